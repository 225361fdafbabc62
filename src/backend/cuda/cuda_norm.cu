// LayerNorm / RMSNorm on the GPU: one block per row for the forward and for dx;
// dw and db by one thread per channel looping over rows in order (the CPU's
// summation order, and no atomics: deterministic).
#include "backend/cuda/cuda_ops_impl.h"

namespace sy {
namespace {

// out, x [N, C]; mean, rstd [N].
__global__ void norm_forward_f32(bool ln, float* out, float* mean, float* rstd, const float* x,
                                 const float* w, const float* b, int64_t C, float eps) {
  __shared__ float shared[32];
  const float* xi = x + blockIdx.x * C;
  float* oi = out + blockIdx.x * C;
  float mu = 0;
  if (ln) {
    float s = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += xi[c];
    mu = cuda::block_sum(s, shared) / static_cast<float>(C);
  }
  float var = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) var += (xi[c] - mu) * (xi[c] - mu);
  var = cuda::block_sum(var, shared);
  const float rs = 1.0f / sqrtf(var / static_cast<float>(C) + eps);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
    oi[c] = ln ? (xi[c] - mu) * rs * w[c] + b[c] : xi[c] * rs * w[c];
  if (threadIdx.x == 0) {
    if (ln) mean[blockIdx.x] = mu;
    rstd[blockIdx.x] = rs;
  }
}

// dx += rstd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)), rmsnorm without the mean term.
__global__ void norm_backward_dx_f32(bool ln, float* dx, const float* dout, const float* x,
                                     const float* w, const float* mean, const float* rstd,
                                     int64_t C) {
  __shared__ float shared[32];
  const int64_t i = blockIdx.x;
  const float* xi = x + i * C;
  const float* di = dout + i * C;
  const float mu = ln ? mean[i] : 0.0f, rs = rstd[i];
  float s1 = 0, s2 = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float dxh = di[c] * w[c];
    s1 += dxh;
    s2 += dxh * (xi[c] - mu) * rs;
  }
  s1 = cuda::block_sum(s1, shared) / static_cast<float>(C);
  s2 = cuda::block_sum(s2, shared) / static_cast<float>(C);
  float* dxi = dx + i * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float xh = (xi[c] - mu) * rs;
    dxi[c] += rs * (di[c] * w[c] - (ln ? s1 : 0.0f) - xh * s2);
  }
}

// dw[c] += Σ_i dout·xhat, db[c] += Σ_i dout, rows in order.
__global__ void norm_backward_dw_f32(bool ln, float* dw, float* db, const float* dout,
                                     const float* x, const float* mean, const float* rstd,
                                     int64_t N, int64_t C) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  float w_acc = dw[c], b_acc = ln ? db[c] : 0.0f;
  for (int64_t i = 0; i < N; ++i) {
    const float d = dout[i * C + c];
    w_acc += d * (x[i * C + c] - (ln ? mean[i] : 0.0f)) * rstd[i];
    b_acc += d;
  }
  dw[c] = w_acc;
  if (ln) db[c] = b_acc;
}

}  // namespace

void CudaOps::norm_forward(NormKind kind, Tensor out, Tensor mean, Tensor rstd, const Tensor& x,
                           const Tensor& w, const Tensor& b, double eps) {
  const int64_t C = w.numel(), N = x.numel() / C;
  const bool ln = kind == NormKind::layernorm;
  check_numel(x, N * C, "norm x");
  check_numel(out, N * C, "norm out");
  check_numel(rstd, N, "norm rstd");
  cuda_check_f32(x, "norm x");
  if (ln) {
    check_numel(b, C, "layernorm bias");
    check_numel(mean, N, "layernorm mean");
  }
  if (N == 0) return;
  norm_forward_f32<<<static_cast<unsigned>(N), cuda::kBlock, 0, stream_>>>(
      ln, out.data<float>(), ln ? mean.data<float>() : nullptr, rstd.data<float>(),
      x.data<float>(), w.data<float>(), ln ? b.data<float>() : nullptr, C,
      static_cast<float>(eps));
  SY_CUDA_LAUNCHED();
}

void CudaOps::norm_backward(NormKind kind, Tensor dx, Tensor dw, Tensor db, const Tensor& dout,
                            const Tensor& x, const Tensor& w, const Tensor& mean,
                            const Tensor& rstd) {
  const int64_t C = w.numel(), N = x.numel() / C;
  const bool ln = kind == NormKind::layernorm;
  check_numel(dx, N * C, "norm dx");
  check_numel(dout, N * C, "norm dout");
  check_numel(dw, C, "norm dw");
  cuda_check_f32(x, "norm x");
  if (N == 0) return;
  const float* mu = ln ? mean.data<float>() : nullptr;
  norm_backward_dx_f32<<<static_cast<unsigned>(N), cuda::kBlock, 0, stream_>>>(
      ln, dx.data<float>(), dout.data<float>(), x.data<float>(), w.data<float>(), mu,
      rstd.data<float>(), C);
  SY_CUDA_LAUNCHED();
  norm_backward_dw_f32<<<cuda::blocks_for(C), cuda::kBlock, 0, stream_>>>(
      ln, dw.data<float>(), ln ? db.data<float>() : nullptr, dout.data<float>(), x.data<float>(),
      mu, rstd.data<float>(), N, C);
  SY_CUDA_LAUNCHED();
}

}  // namespace sy
