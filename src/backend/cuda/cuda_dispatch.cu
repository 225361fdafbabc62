// MoE token permute (gather rows), unpermute + combine (token-major weighted sums,
// slots in list order: deterministic, no atomics) and per-slot dot products.
// The index lists live on the device, where the front cannot read them: each kernel
// bounds-checks the indices it uses and traps on one outside its range (the launch
// then fails with an error at the next check) rather than reading stray memory.
#include "backend/cuda/cuda_ops_impl.h"

namespace sy {
namespace {

// out[i, c] = w[i] · x[rows[i], c]; x has N rows; rows[i] = −1: an empty slot, 0.
__global__ void gather_kernel(float* out, const float* x, const int32_t* rows, const float* w,
                              int64_t S, int64_t C, int64_t N) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= S * C) return;
  const int64_t i = o / C, c = o % C;
  const int64_t r = rows[i];
  if (r < -1 || r >= N) __trap();
  if (r < 0) {  // an empty slot
    out[o] = 0.0f;
    return;
  }
  const float v = x[r * C + c];
  out[o] = w ? w[i] * v : v;
}

// out[t, c] += Σ_{j ∈ [begin[t], begin[t+1])} w[slots[j]] · y[slots[j], c], j ascending;
// slots has n_slots entries, y has S rows.
__global__ void combine_kernel(float* out, const float* y, const int32_t* begin,
                               const int32_t* slots, const float* w, int64_t N, int64_t C,
                               int64_t n_slots, int64_t S) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= N * C) return;
  const int64_t t = o / C, c = o % C;
  const int32_t j0 = begin[t], j1 = begin[t + 1];
  if (j0 < 0 || j1 < j0 || j1 > n_slots) __trap();
  float acc = out[o];
  for (int32_t j = j0; j < j1; ++j) {
    const int64_t s = slots[j];
    if (s < 0 || s >= S) __trap();
    acc += (w ? w[s] : 1.0f) * y[s * C + c];
  }
  out[o] = acc;
}

// out[i] = ⟨a[i], b[rows[i]]⟩, one block per row; b has N rows.
__global__ void dots_kernel(float* out, const float* a, const float* b, const int32_t* rows,
                            int64_t C, int64_t N) {
  __shared__ float shared[32];
  const int64_t r = rows[blockIdx.x];
  if (r < -1 || r >= N) __trap();
  if (r < 0) {  // an empty slot (the whole block returns together)
    if (threadIdx.x == 0) out[blockIdx.x] = 0.0f;
    return;
  }
  const float* x = a + blockIdx.x * C;
  const float* y = b + r * C;
  float s = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += x[c] * y[c];
  s = cuda::block_sum(s, shared);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

}  // namespace

// Index lists come from the host-side routing and are range-checked there (the
// front checks them again when they sit in host memory; here that would cost a
// device → host copy per call, so the kernels guard their reads instead).
void CudaOps::gather_rows_impl(Tensor out, const Tensor& x, const Tensor& rows, const Tensor& w) {
  const int64_t C = x.dim(-1), S = rows.numel();
  gather_kernel<<<cuda::blocks_for(S * C), cuda::kBlock, 0, stream_>>>(
      out.data<float>(), x.data<float>(), rows.data<int32_t>(),
      w.empty() ? nullptr : w.data<float>(), S, C, x.numel() / C);
  SY_CUDA_LAUNCHED();
}

void CudaOps::combine_rows_impl(Tensor out, const Tensor& y, const Tensor& begin,
                                const Tensor& slots, const Tensor& w) {
  const int64_t C = out.dim(-1), N = out.numel() / C;
  combine_kernel<<<cuda::blocks_for(N * C), cuda::kBlock, 0, stream_>>>(
      out.data<float>(), y.data<float>(), begin.data<int32_t>(), slots.data<int32_t>(),
      w.empty() ? nullptr : w.data<float>(), N, C, slots.numel(), y.numel() / C);
  SY_CUDA_LAUNCHED();
}

void CudaOps::row_dots_impl(Tensor out, const Tensor& a, const Tensor& b, const Tensor& rows) {
  const int64_t C = a.dim(-1), S = a.numel() / C;
  dots_kernel<<<static_cast<unsigned>(S), cuda::kBlock, 0, stream_>>>(
      out.data<float>(), a.data<float>(), b.data<float>(), rows.data<int32_t>(), C, b.numel() / C);
  SY_CUDA_LAUNCHED();
}

}  // namespace sy
