// LayerNorm / RMSNorm on the GPU: one block per row for the forward and for dx;
// dw and db by a two-stage reduction over rows (fixed chunks of rows, then the
// chunks in order: deterministic, no atomics, and enough blocks to fill the GPU).
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

// Stage 1 of dw, db: partial sums over chunk r = blockIdx.y of `rows_per_chunk` rows,
// for the 32 channels of blockIdx.x. Block (32, 8): thread (tx, ty) takes rows
// ty, ty + 8, ... of the chunk; the 8 row lanes are then added in lane order.
// pw, pb [R, C] (pb unused by rmsnorm).
constexpr int kLanes = 8;
__global__ void norm_dw_partials(bool ln, float* pw, float* pb, const float* dout, const float* x,
                                 const float* mean, const float* rstd, int64_t N, int64_t C,
                                 int64_t rows_per_chunk) {
  __shared__ float sw[kLanes][33], sb[kLanes][33];  // 33: no bank conflicts on the lane sum
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  const int64_t r0 = blockIdx.y * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < N ? r0 + rows_per_chunk : N;
  float aw = 0, ab = 0;
  if (c < C)
    for (int64_t i = r0 + threadIdx.y; i < r1; i += kLanes) {
      const float d = dout[i * C + c];
      aw += d * (x[i * C + c] - (ln ? mean[i] : 0.0f)) * rstd[i];
      ab += d;
    }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  float tw = 0, tb = 0;
  for (int k = 0; k < kLanes; ++k) {
    tw += sw[k][threadIdx.x];
    tb += sb[k][threadIdx.x];
  }
  pw[blockIdx.y * C + c] = tw;
  if (ln) pb[blockIdx.y * C + c] = tb;
}

// Stage 2: dw[c] += Σ_r pw[r, c], db[c] += Σ_r pb[r, c], chunks in order.
__global__ void norm_dw_finish(bool ln, float* dw, float* db, const float* pw, const float* pb,
                               int64_t R, int64_t C) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  float w = 0, b = 0;
  for (int64_t r = 0; r < R; ++r) {
    w += pw[r * C + c];
    if (ln) b += pb[r * C + c];
  }
  dw[c] += w;
  if (ln) db[c] += b;
}

// Chunks of at least 64 rows, at most 512 chunks: the split depends on N alone, so
// the summation order (and the bits) never depend on the GPU it runs on.
int64_t norm_row_chunks(int64_t N) {
  const int64_t by_size = (N + 63) / 64;
  return by_size < 512 ? by_size : 512;
}

}  // namespace

void CudaOps::norm_forward_impl(NormKind kind, Tensor out, Tensor mean, Tensor rstd,
                                const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const int64_t C = w.numel(), N = x.numel() / C;
  const bool ln = kind == NormKind::layernorm;
  norm_forward_f32<<<static_cast<unsigned>(N), cuda::kBlock, 0, stream_>>>(
      ln, out.data<float>(), ln ? mean.data<float>() : nullptr, rstd.data<float>(),
      x.data<float>(), w.data<float>(), ln ? b.data<float>() : nullptr, C,
      static_cast<float>(eps));
  SY_CUDA_LAUNCHED();
}

void CudaOps::norm_backward_impl(NormKind kind, Tensor dx, Tensor dw, Tensor db,
                                 const Tensor& dout, const Tensor& x, const Tensor& w,
                                 const Tensor& mean, const Tensor& rstd) {
  const int64_t C = w.numel(), N = x.numel() / C;
  const bool ln = kind == NormKind::layernorm;
  const float* mu = ln ? mean.data<float>() : nullptr;
  norm_backward_dx_f32<<<static_cast<unsigned>(N), cuda::kBlock, 0, stream_>>>(
      ln, dx.data<float>(), dout.data<float>(), x.data<float>(), w.data<float>(), mu,
      rstd.data<float>(), C);
  SY_CUDA_LAUNCHED();
  const int64_t R = norm_row_chunks(N), rows_per_chunk = (N + R - 1) / R;
  float* pw = static_cast<float*>(scratch(static_cast<size_t>(2 * R * C) * sizeof(float)));
  float* pb = pw + R * C;
  const dim3 grid(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>(R));
  norm_dw_partials<<<grid, dim3(32, kLanes), 0, stream_>>>(ln, pw, pb, dout.data<float>(),
                                                          x.data<float>(), mu, rstd.data<float>(),
                                                          N, C, rows_per_chunk);
  SY_CUDA_LAUNCHED();
  norm_dw_finish<<<cuda::blocks_for(C), cuda::kBlock, 0, stream_>>>(
      ln, dw.data<float>(), ln ? db.data<float>() : nullptr, pw, pb, R, C);
  SY_CUDA_LAUNCHED();
}

}  // namespace sy
