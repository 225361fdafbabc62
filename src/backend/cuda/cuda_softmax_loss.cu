// Row softmax and the fused softmax + label-smoothed cross-entropy on the GPU: one
// block per row, fixed-order block reductions.
#include "backend/cuda/cuda_ops_impl.h"

namespace sy {
namespace {

// out, x [rows, cols]
__global__ void softmax_fwd(float* out, const float* x, int64_t cols) {
  __shared__ float shared[32];
  cuda::block_row_softmax(out + blockIdx.x * cols, x + blockIdx.x * cols, cols, cols, shared);
}

__global__ void softmax_bwd(float* dx, const float* dout, const float* out, int64_t cols) {
  __shared__ float shared[32];
  const int64_t o = blockIdx.x * cols;
  cuda::block_row_softmax_backward(dx + o, dout + o, out + o, cols, shared);
}

// loss = (1−ε)·(lse − z_y) + ε·(lse − mean z), nll = lse − z_y; 0 where target < 0.
__global__ void cross_entropy_fwd(float* loss, float* nll, float* lse, const float* logits,
                                  const int32_t* targets, int64_t V, float smoothing) {
  __shared__ float shared[32];
  const int64_t i = blockIdx.x;
  const float* z = logits + i * V;
  float mx = -INFINITY, sum_z = 0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    mx = fmaxf(mx, z[v]);
    sum_z += z[v];
  }
  mx = cuda::block_max(mx, shared);
  sum_z = cuda::block_sum(sum_z, shared);
  float s = 0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) s += expf(z[v] - mx);
  s = cuda::block_sum(s, shared);
  if (threadIdx.x != 0) return;
  const float l = mx + logf(s);
  lse[i] = l;
  const int32_t y = targets[i];
  if (y < 0) {
    loss[i] = nll[i] = 0;
    return;
  }
  const float n = l - z[y];
  nll[i] = n;
  loss[i] = (1.0f - smoothing) * n + smoothing * (l - sum_z / static_cast<float>(V));
}

// dlogits = scale·(softmax(z) − (1−ε)·onehot(y) − ε/V); may alias logits.
__global__ void cross_entropy_bwd(float* dlogits, const float* logits, const float* lse,
                                  const int32_t* targets, int64_t V, float smoothing, float scale) {
  const int64_t i = blockIdx.x;
  const int32_t y = targets[i];
  const float* z = logits + i * V;
  float* d = dlogits + i * V;
  const float l = lse[i], uniform = smoothing / static_cast<float>(V);
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    if (y < 0) {
      d[v] = 0;
      continue;
    }
    float g = scale * (expf(z[v] - l) - uniform);
    if (v == y) g -= scale * (1.0f - smoothing);
    d[v] = g;
  }
}

}  // namespace

void CudaOps::softmax_forward_impl(Tensor out, const Tensor& x) {
  const int64_t cols = x.dim(-1), rows = x.numel() / cols;
  softmax_fwd<<<static_cast<unsigned>(rows), cuda::kBlock, 0, stream_>>>(out.data<float>(),
                                                                        x.data<float>(), cols);
  SY_CUDA_LAUNCHED();
}

void CudaOps::softmax_backward_impl(Tensor dx, const Tensor& dout, const Tensor& out) {
  const int64_t cols = out.dim(-1), rows = out.numel() / cols;
  softmax_bwd<<<static_cast<unsigned>(rows), cuda::kBlock, 0, stream_>>>(
      dx.data<float>(), dout.data<float>(), out.data<float>(), cols);
  SY_CUDA_LAUNCHED();
}

// The kernels index logits by target: targets are range-checked on a host copy
// first (the front can only check host-resident ones).
void CudaOps::cross_entropy_forward_impl(Tensor loss, Tensor nll, Tensor lse,
                                         const Tensor& logits, const Tensor& targets,
                                         double smoothing) {
  const int64_t V = logits.dim(-1), N = logits.numel() / V;
  indices_to_host(targets);
  check_targets(host_view(targets), V);
  cross_entropy_fwd<<<static_cast<unsigned>(N), cuda::kBlock, 0, stream_>>>(
      loss.data<float>(), nll.data<float>(), lse.data<float>(), logits.data<float>(),
      targets.data<int32_t>(), V, static_cast<float>(smoothing));
  SY_CUDA_LAUNCHED();
}

void CudaOps::cross_entropy_backward_impl(Tensor dlogits, const Tensor& logits, const Tensor& lse,
                                          const Tensor& targets, double smoothing, double scale) {
  const int64_t V = logits.dim(-1), N = logits.numel() / V;
  cross_entropy_bwd<<<static_cast<unsigned>(N), cuda::kBlock, 0, stream_>>>(
      dlogits.data<float>(), logits.data<float>(), lse.data<float>(), targets.data<int32_t>(), V,
      static_cast<float>(smoothing), static_cast<float>(scale));
  SY_CUDA_LAUNCHED();
}

}  // namespace sy
