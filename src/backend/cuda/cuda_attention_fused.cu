// Fused (flash-style) attention on the GPU: the algorithm of the CPU's
// cpu_attention_fused.cpp, which is its reference, with one warp per query row
// (forward, dq) or key row (dk, dv) and tiles of 32 keys or queries, one per lane,
// in shared memory. No [T, T] matrix, no floating-point atomics: each output
// element is summed by one lane in tile order, so two runs give the same bits.
//
// This first kernel multiplies on the CUDA cores in fp32 (bf16 operands rounded
// where tensor cores would round them): it is the obviously correct version the
// op table checks; a tensor-core (mma) version will be checked against it.
#include <cmath>

#include "backend/cuda/cuda_ops_impl.h"

namespace sy {
namespace {

constexpr int kTile = static_cast<int>(kFusedAttentionTile);  // keys (queries) per tile: one per lane
constexpr int kWarps = 8;                                      // rows per block: one per warp
constexpr int kMaxD = static_cast<int>(kFusedAttentionMaxHeadDim);
constexpr int kPerLane = kMaxD / 32;  // head-dim elements each lane accumulates: d = lane + 32·k
static_assert(kTile == 32, "one key per lane of a warp");

// What a thread of a block works on: block → (b·NH + h, its first row row0), a
// head's row tiles being consecutive blocks; warp w → row row0 + w (a query row,
// or a key row in the dk, dv kernel), valid when inside the sequence (the same for
// every lane of the warp).
struct RowBlock {
  int warp, lane;
  int64_t bh, b, h, C, row0, row;
  bool valid;
};
__device__ inline RowBlock row_block(int64_t Tn, int64_t NH, int D) {
  RowBlock r;
  r.warp = threadIdx.x >> 5;
  r.lane = threadIdx.x & 31;
  const int64_t tiles = (Tn + kWarps - 1) / kWarps;
  r.bh = blockIdx.x / tiles;
  r.row0 = (blockIdx.x % tiles) * kWarps;
  r.b = r.bh / NH;
  r.h = r.bh % NH;
  r.C = NH * D;
  r.row = r.row0 + r.warp;
  r.valid = r.row < Tn;
  return r;
}

// Rows t0 .. t0+31 of two [T, D] operands (row stride `stride` in src) → shared
// [32][kMaxD + 1] tiles (+1: lane r reads row r with no bank conflicts); rows past T
// become 0 so that masked products stay finite.
__device__ inline void load_tiles(float (*a)[kMaxD + 1], float (*b)[kMaxD + 1], const float* src_a,
                                  const float* src_b, int64_t stride, int64_t t0, int64_t Tn, int D,
                                  bool bf16) {
  for (int e = threadIdx.x; e < kTile * D; e += blockDim.x) {
    const int r = e / D, d = e % D;
    const int64_t t = t0 + r;
    const bool in = t < Tn;
    a[r][d] = in ? cuda::operand(src_a[t * stride + d], bf16) : 0.f;
    b[r][d] = in ? cuda::operand(src_b[t * stride + d], bf16) : 0.f;
  }
}

// out [B,T,C], lse [B·NH, T] from qkv [B,T,3C]: warp w of the block is query row
// row0 + w; the block walks the key tiles its last row needs.
__global__ void __launch_bounds__(kWarps * 32)
    fused_forward(float* out, float* lse, const float* qkv, int64_t Tn, int64_t NH, int D,
                  float scale, bool causal, bool bf16) {
  __shared__ float qs[kWarps][kMaxD];
  __shared__ float ks[kTile][kMaxD + 1];
  __shared__ float vs[kTile][kMaxD + 1];
  const RowBlock rb = row_block(Tn, NH, D);
  const int warp = rb.warp, lane = rb.lane;
  const int64_t bh = rb.bh, b = rb.b, h = rb.h, C = rb.C, row0 = rb.row0, i = rb.row;
  const bool valid = rb.valid;
  const float* q = qkv + b * Tn * 3 * C + h * D;  // row t: q + t·3C; k at +C, v at +2C
  if (valid)
    for (int d = lane; d < D; d += 32) qs[warp][d] = cuda::operand(q[i * 3 * C + d], bf16);
  const int64_t last = (row0 + kWarps < Tn ? row0 + kWarps : Tn) - 1;
  const int64_t end = causal ? last + 1 : Tn;
  float m = -INFINITY, l = 0.f, o[kPerLane];
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) o[k] = 0.f;
  for (int64_t j0 = 0; j0 < end; j0 += kTile) {
    __syncthreads();  // every warp is done with the previous tile (and qs is written)
    load_tiles(ks, vs, q + C, q + 2 * C, 3 * C, j0, Tn, D, bf16);
    __syncthreads();
    if (!valid) continue;
    const int64_t j = j0 + lane;
    float s = -INFINITY;
    if (j < Tn && (!causal || j <= i)) {
      float dot = 0.f;
      for (int d = 0; d < D; ++d) dot += qs[warp][d] * ks[lane][d];
      s = dot * scale;
    }
    // Tile 0 holds key 0, which every row sees: m is finite from there on, so a
    // fully masked later tile gives corr = 1 and p = 0.
    const float mn = fmaxf(m, cuda::warp_max(s));
    const float corr = expf(m - mn);
    const float p = expf(s - mn);
    l = l * corr + cuda::warp_sum(p);
    const float pr = cuda::operand(p, bf16);
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) o[k] *= corr;
    for (int jj = 0; jj < kTile; ++jj) {
      const float pj = __shfl_sync(0xffffffffu, pr, jj);
#pragma unroll
      for (int k = 0; k < kPerLane; ++k)
        if (lane + 32 * k < D) o[k] += pj * vs[jj][lane + 32 * k];
    }
    m = mn;
  }
  if (!valid) return;
  float* y = out + (b * Tn + i) * C + h * D;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k)
    if (lane + 32 * k < D) y[lane + 32 * k] = o[k] / l;
  if (lane == 0) lse[bh * Tn + i] = m + logf(l);
}

// delta [B·NH, T] = Σ_d dout·out per row; one thread per row, d in order.
__global__ void fused_delta(float* delta, const float* dout, const float* out, int64_t rows,
                            int64_t Tn, int64_t NH, int D) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= rows) return;
  const int64_t i = o % Tn, bh = o / Tn, b = bh / NH, h = bh % NH, C = NH * D;
  const float* g = dout + (b * Tn + i) * C + h * D;
  const float* y = out + (b * Tn + i) * C + h * D;
  float acc = 0.f;
  for (int d = 0; d < D; ++d) acc += g[d] * y[d];
  delta[o] = acc;
}

// dq: warp w is query row i = row0 + w; lane j of a key tile computes p and ds of
// (i, j), then every lane adds ds_j·k_j to its head-dim elements in j order.
__global__ void __launch_bounds__(kWarps * 32)
    fused_backward_dq(float* dqkv, const float* qkv, const float* dout, const float* lse,
                      const float* delta, int64_t Tn, int64_t NH, int D, float scale, bool causal,
                      bool bf16) {
  __shared__ float qs[kWarps][kMaxD];
  __shared__ float gs[kWarps][kMaxD];
  __shared__ float ks[kTile][kMaxD + 1];
  __shared__ float vs[kTile][kMaxD + 1];
  const RowBlock rb = row_block(Tn, NH, D);
  const int warp = rb.warp, lane = rb.lane;
  const int64_t bh = rb.bh, b = rb.b, h = rb.h, C = rb.C, row0 = rb.row0, i = rb.row;
  const bool valid = rb.valid;
  const float* q = qkv + b * Tn * 3 * C + h * D;
  float lse_i = 0.f, delta_i = 0.f;
  if (valid) {
    for (int d = lane; d < D; d += 32) {
      qs[warp][d] = cuda::operand(q[i * 3 * C + d], bf16);
      gs[warp][d] = cuda::operand(dout[(b * Tn + i) * C + h * D + d], bf16);
    }
    lse_i = lse[bh * Tn + i];
    delta_i = delta[bh * Tn + i];
  }
  const int64_t last = (row0 + kWarps < Tn ? row0 + kWarps : Tn) - 1;
  const int64_t end = causal ? last + 1 : Tn;
  float acc[kPerLane];
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) acc[k] = 0.f;
  for (int64_t j0 = 0; j0 < end; j0 += kTile) {
    __syncthreads();
    load_tiles(ks, vs, q + C, q + 2 * C, 3 * C, j0, Tn, D, bf16);
    __syncthreads();
    if (!valid) continue;
    const int64_t j = j0 + lane;
    float ds = 0.f;
    if (j < Tn && (!causal || j <= i)) {
      float dot = 0.f, dp = 0.f;
      for (int d = 0; d < D; ++d) {
        dot += qs[warp][d] * ks[lane][d];
        dp += gs[warp][d] * vs[lane][d];
      }
      const float p = expf(dot * scale - lse_i);
      ds = p * (dp - delta_i);
    }
    const float dsr = cuda::operand(ds, bf16);
    for (int jj = 0; jj < kTile; ++jj) {
      const float dsj = __shfl_sync(0xffffffffu, dsr, jj);
#pragma unroll
      for (int k = 0; k < kPerLane; ++k)
        if (lane + 32 * k < D) acc[k] += dsj * ks[jj][lane + 32 * k];
    }
  }
  if (!valid) return;
  float* dq = dqkv + (b * Tn + i) * 3 * C + h * D;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k)
    if (lane + 32 * k < D) dq[lane + 32 * k] = acc[k] * scale;
}

// dk, dv: warp w is key row j = row0 + w; lane i of a query tile computes p and ds
// of (i, j), then every lane adds ds_i·q_i (dk) and p_i·dout_i (dv) in i order.
// Causal: query tiles start at the one holding row0 (earlier queries see no key ≥ row0).
__global__ void __launch_bounds__(kWarps * 32)
    fused_backward_dkv(float* dqkv, const float* qkv, const float* dout, const float* lse,
                       const float* delta, int64_t Tn, int64_t NH, int D, float scale, bool causal,
                       bool bf16) {
  __shared__ float krow[kWarps][kMaxD];
  __shared__ float vrow[kWarps][kMaxD];
  __shared__ float qs[kTile][kMaxD + 1];
  __shared__ float gs[kTile][kMaxD + 1];
  __shared__ float lse_t[kTile], delta_t[kTile];
  const RowBlock rb = row_block(Tn, NH, D);
  const int warp = rb.warp, lane = rb.lane;
  const int64_t bh = rb.bh, b = rb.b, h = rb.h, C = rb.C, row0 = rb.row0, j = rb.row;
  const bool valid = rb.valid;
  const float* q = qkv + b * Tn * 3 * C + h * D;
  const float* g = dout + b * Tn * C + h * D;  // row t: g + t·C
  if (valid)
    for (int d = lane; d < D; d += 32) {
      krow[warp][d] = cuda::operand(q[j * 3 * C + C + d], bf16);
      vrow[warp][d] = cuda::operand(q[j * 3 * C + 2 * C + d], bf16);
    }
  float acc_k[kPerLane], acc_v[kPerLane];
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) acc_k[k] = acc_v[k] = 0.f;
  for (int64_t i0 = causal ? row0 / kTile * kTile : 0; i0 < Tn; i0 += kTile) {
    __syncthreads();
    for (int e = threadIdx.x; e < kTile * D; e += blockDim.x) {
      const int r = e / D, d = e % D;
      const int64_t t = i0 + r;
      const bool in = t < Tn;
      qs[r][d] = in ? cuda::operand(q[t * 3 * C + d], bf16) : 0.f;
      gs[r][d] = in ? cuda::operand(g[t * C + d], bf16) : 0.f;
    }
    if (threadIdx.x < kTile) {
      const int64_t t = i0 + threadIdx.x;
      lse_t[threadIdx.x] = t < Tn ? lse[bh * Tn + t] : 0.f;
      delta_t[threadIdx.x] = t < Tn ? delta[bh * Tn + t] : 0.f;
    }
    __syncthreads();
    if (!valid) continue;
    const int64_t i = i0 + lane;
    float p = 0.f, ds = 0.f;
    if (i < Tn && (!causal || i >= j)) {
      float dot = 0.f, dp = 0.f;
      for (int d = 0; d < D; ++d) {
        dot += qs[lane][d] * krow[warp][d];
        dp += gs[lane][d] * vrow[warp][d];
      }
      p = expf(dot * scale - lse_t[lane]);
      ds = p * (dp - delta_t[lane]);
    }
    const float pr = cuda::operand(p, bf16), dsr = cuda::operand(ds, bf16);
    for (int ii = 0; ii < kTile; ++ii) {
      const float pi = __shfl_sync(0xffffffffu, pr, ii);
      const float dsi = __shfl_sync(0xffffffffu, dsr, ii);
#pragma unroll
      for (int k = 0; k < kPerLane; ++k)
        if (lane + 32 * k < D) {
          acc_k[k] += dsi * qs[ii][lane + 32 * k];
          acc_v[k] += pi * gs[ii][lane + 32 * k];
        }
    }
  }
  if (!valid) return;
  float* dk = dqkv + (b * Tn + j) * 3 * C + C + h * D;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k)
    if (lane + 32 * k < D) {
      dk[lane + 32 * k] = acc_k[k] * scale;
      dk[C + lane + 32 * k] = acc_v[k];  // dv sits C after dk in the row
    }
}

struct FusedLaunch {
  int64_t Tn, NH;
  int D;
  float scale;
  unsigned blocks;
};

FusedLaunch fused_launch(const Tensor& qkv, int64_t n_heads) {
  FusedLaunch f;
  f.Tn = qkv.dim(1);
  f.NH = n_heads;
  f.D = static_cast<int>(qkv.dim(2) / 3 / n_heads);
  f.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(f.D)));  // as the CPU's
  const int64_t blocks = qkv.dim(0) * n_heads * ((f.Tn + kWarps - 1) / kWarps);
  SY_CHECK(blocks < (int64_t{1} << 31), "fused attention: {} blocks are too many for one launch", blocks);
  f.blocks = static_cast<unsigned>(blocks);
  return f;
}

}  // namespace

void CudaOps::attention_fused_forward_impl(Tensor out, Tensor lse, const Tensor& qkv, int64_t n_heads,
                                           bool causal) {
  const FusedLaunch f = fused_launch(qkv, n_heads);
  fused_forward<<<f.blocks, kWarps * 32, 0, stream_>>>(out.data<float>(), lse.data<float>(),
                                                       qkv.data<float>(), f.Tn, f.NH, f.D, f.scale,
                                                       causal, bf16_operands());
  SY_CUDA_LAUNCHED();
}

void CudaOps::attention_fused_backward_impl(Tensor dqkv, Tensor delta, const Tensor& dout,
                                            const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                            int64_t n_heads, bool causal) {
  const FusedLaunch f = fused_launch(qkv, n_heads);
  const int64_t rows = qkv.dim(0) * n_heads * f.Tn;
  fused_delta<<<cuda::blocks_for(rows), cuda::kBlock, 0, stream_>>>(
      delta.data<float>(), dout.data<float>(), out.data<float>(), rows, f.Tn, f.NH, f.D);
  SY_CUDA_LAUNCHED();
  fused_backward_dq<<<f.blocks, kWarps * 32, 0, stream_>>>(
      dqkv.data<float>(), qkv.data<float>(), dout.data<float>(), lse.data<float>(),
      delta.data<float>(), f.Tn, f.NH, f.D, f.scale, causal, bf16_operands());
  SY_CUDA_LAUNCHED();
  fused_backward_dkv<<<f.blocks, kWarps * 32, 0, stream_>>>(
      dqkv.data<float>(), qkv.data<float>(), dout.data<float>(), lse.data<float>(),
      delta.data<float>(), f.Tn, f.NH, f.D, f.scale, causal, bf16_operands());
  SY_CUDA_LAUNCHED();
}

}  // namespace sy
