// MoE token permute (gather rows), unpermute + combine (token-major weighted sums,
// slots in list order: deterministic, no atomics) and per-slot dot products.
#include "backend/cuda/cuda_ops_impl.h"

namespace sy {
namespace {

// out[i, c] = w[i] · x[rows[i], c]
__global__ void gather_kernel(float* out, const float* x, const int32_t* rows, const float* w,
                              int64_t S, int64_t C) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= S * C) return;
  const int64_t i = o / C, c = o % C;
  const float v = x[static_cast<int64_t>(rows[i]) * C + c];
  out[o] = w ? w[i] * v : v;
}

// out[t, c] += Σ_{j ∈ [begin[t], begin[t+1])} w[slots[j]] · y[slots[j], c], j ascending.
__global__ void combine_kernel(float* out, const float* y, const int32_t* begin,
                               const int32_t* slots, const float* w, int64_t N, int64_t C) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= N * C) return;
  const int64_t t = o / C, c = o % C;
  float acc = out[o];
  for (int32_t j = begin[t]; j < begin[t + 1]; ++j) {
    const int64_t s = slots[j];
    acc += (w ? w[s] : 1.0f) * y[s * C + c];
  }
  out[o] = acc;
}

// out[i] = ⟨a[i], b[rows[i]]⟩, one block per row.
__global__ void dots_kernel(float* out, const float* a, const float* b, const int32_t* rows,
                            int64_t C) {
  __shared__ float shared[32];
  const float* x = a + blockIdx.x * C;
  const float* y = b + static_cast<int64_t>(rows[blockIdx.x]) * C;
  float s = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += x[c] * y[c];
  s = cuda::block_sum(s, shared);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

}  // namespace

// Index lists come from the host-side routing and are range-checked there (the
// front checks them again when they sit in host memory; here that would cost a
// device → host copy per call).
void CudaOps::gather_rows_impl(Tensor out, const Tensor& x, const Tensor& rows, const Tensor& w) {
  const int64_t C = x.dim(-1), S = rows.numel();
  gather_kernel<<<cuda::blocks_for(S * C), cuda::kBlock, 0, stream_>>>(
      out.data<float>(), x.data<float>(), rows.data<int32_t>(),
      w.empty() ? nullptr : w.data<float>(), S, C);
  SY_CUDA_LAUNCHED();
}

void CudaOps::combine_rows_impl(Tensor out, const Tensor& y, const Tensor& begin,
                                const Tensor& slots, const Tensor& w) {
  const int64_t C = out.dim(-1), N = out.numel() / C;
  combine_kernel<<<cuda::blocks_for(N * C), cuda::kBlock, 0, stream_>>>(
      out.data<float>(), y.data<float>(), begin.data<int32_t>(), slots.data<int32_t>(),
      w.empty() ? nullptr : w.data<float>(), N, C);
  SY_CUDA_LAUNCHED();
}

void CudaOps::row_dots_impl(Tensor out, const Tensor& a, const Tensor& b, const Tensor& rows) {
  const int64_t C = a.dim(-1), S = a.numel() / C;
  dots_kernel<<<static_cast<unsigned>(S), cuda::kBlock, 0, stream_>>>(
      out.data<float>(), a.data<float>(), b.data<float>(), rows.data<int32_t>(), C);
  SY_CUDA_LAUNCHED();
}

}  // namespace sy
