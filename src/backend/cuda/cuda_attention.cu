// Multi-head attention on the GPU, to start as the CPU does it: heads split out of
// qkv, cuBLAS strided-batched GEMMs over (batch, head) and a row softmax with the
// causal mask folded in. A fused (flash-style) kernel replaces this later; this one
// is the reference it will be checked against.
#include <cmath>

#include "backend/cuda/cuda_ops_impl.h"

namespace sy {
namespace {

// qkv [B,T,3,NH,D] → q, k, v [B,NH,T,D]; one thread per element of q.
__global__ void split_heads(float* q, float* k, float* v, const float* qkv, int64_t B, int64_t Tn,
                            int64_t NH, int64_t D) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= B * NH * Tn * D) return;
  const int64_t d = o % D, t = (o / D) % Tn, h = (o / (D * Tn)) % NH, b = o / (D * Tn * NH);
  const int64_t C = NH * D;
  const float* row = qkv + (b * Tn + t) * 3 * C;
  q[o] = row[h * D + d];
  k[o] = row[C + h * D + d];
  v[o] = row[2 * C + h * D + d];
}

// x [B,T,C] → heads [B,NH,T,D]
__global__ void split_one(float* heads, const float* x, int64_t B, int64_t Tn, int64_t NH,
                          int64_t D) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= B * NH * Tn * D) return;
  const int64_t d = o % D, t = (o / D) % Tn, h = (o / (D * Tn)) % NH, b = o / (D * Tn * NH);
  heads[o] = x[(b * Tn + t) * NH * D + h * D + d];
}

// Up to three [B,NH,T,D] parts → out [B,T,parts·C]; one thread per output element.
__global__ void merge_heads(float* out, const float* p0, const float* p1, const float* p2,
                            int n_parts, int64_t B, int64_t Tn, int64_t NH, int64_t D) {
  const int64_t C = NH * D, width = n_parts * C;
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= B * Tn * width) return;
  const int64_t col = o % width, bt = o / width, b = bt / Tn, t = bt % Tn;
  const int part = static_cast<int>(col / C);
  const int64_t h = (col % C) / D, d = col % D;
  const float* src = part == 0 ? p0 : part == 1 ? p1 : p2;
  out[o] = src[((b * NH + h) * Tn + t) * D + d];
}

// In place, one block per row of scores [rows, T]: → probabilities; with `causal`,
// row r (query position r % T) sees columns ≤ r % T, the rest become exactly 0.
__global__ void masked_softmax(float* p, int64_t Tn, bool causal) {
  __shared__ float shared[32];
  float* row = p + blockIdx.x * Tn;
  cuda::block_row_softmax(row, row, causal ? (blockIdx.x % Tn) + 1 : Tn, Tn, shared);
}

// In place: dprobs → dscores = p ⊙ (dp − Σ_j p·dp).
__global__ void softmax_rows_backward(float* dp, const float* p, int64_t Tn) {
  __shared__ float shared[32];
  float* d = dp + blockIdx.x * Tn;
  cuda::block_row_softmax_backward(d, d, p + blockIdx.x * Tn, Tn, shared);
}

// Decoding, one position `pos` (see Ops::attention_decode). Four plain kernels, each
// an obvious loop (with bf16 operands, q, k, the normalised probabilities and v
// rounded where the full pass's products round them, as the CPU's decode does): k and v into the caches; a score per (b, h, t ≤ pos); the row
// softmax of each (b, h) over its pos + 1 scores; out[b, c] summed over t in order.
__global__ void decode_write_kv(float* kc, float* vc, const float* qkv, int64_t B, int64_t L, int64_t C,
                                int64_t pos) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= B * C) return;
  const int64_t b = o / C, c = o % C;
  kc[(b * L + pos) * C + c] = qkv[b * 3 * C + C + c];
  vc[(b * L + pos) * C + c] = qkv[b * 3 * C + 2 * C + c];
}

__global__ void decode_scores(float* scores, const float* qkv, const float* kc, int64_t B, int64_t L,
                              int64_t NH, int64_t D, int64_t pos, float scale, bool bf16) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t n = pos + 1;
  if (o >= B * NH * n) return;
  const int64_t t = o % n, h = (o / n) % NH, b = o / (n * NH);
  const int64_t C = NH * D;
  const float* q = qkv + b * 3 * C + h * D;
  const float* k = kc + (b * L + t) * C + h * D;
  float dot = 0.f;
  for (int64_t d = 0; d < D; ++d) dot += cuda::operand(q[d], bf16) * cuda::operand(k[d], bf16);
  scores[(b * NH + h) * L + t] = dot * scale;
}

__global__ void decode_softmax(float* scores, int64_t L, int64_t pos) {
  __shared__ float shared[32];
  float* row = scores + blockIdx.x * L;
  cuda::block_row_softmax(row, row, pos + 1, pos + 1, shared);
}

__global__ void decode_weighted_sum(float* out, const float* scores, const float* vc, int64_t B,
                                    int64_t L, int64_t NH, int64_t D, int64_t pos, bool bf16) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t C = NH * D;
  if (o >= B * C) return;
  const int64_t b = o / C, c = o % C, h = c / D;
  const float* p = scores + (b * NH + h) * L;
  float acc = 0.f;
  for (int64_t t = 0; t <= pos; ++t)
    acc += cuda::operand(p[t], bf16) * cuda::operand(vc[(b * L + t) * C + c], bf16);
  out[o] = acc;
}

}  // namespace

void CudaOps::attention_decode_impl(Tensor out, const Tensor& qkv, Tensor k_cache, Tensor v_cache,
                                    Tensor scores, int64_t position, int64_t n_heads) {
  const int64_t B = qkv.dim(0), C = qkv.dim(1) / 3, L = k_cache.dim(1), D = C / n_heads;
  decode_write_kv<<<cuda::blocks_for(B * C), cuda::kBlock, 0, stream_>>>(
      k_cache.data<float>(), v_cache.data<float>(), qkv.data<float>(), B, L, C, position);
  SY_CUDA_LAUNCHED();
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  decode_scores<<<cuda::blocks_for(B * n_heads * (position + 1)), cuda::kBlock, 0, stream_>>>(
      scores.data<float>(), qkv.data<float>(), k_cache.data<float>(), B, L, n_heads, D, position, scale,
      bf16_operands());
  SY_CUDA_LAUNCHED();
  decode_softmax<<<static_cast<unsigned>(B * n_heads), cuda::kBlock, 0, stream_>>>(scores.data<float>(), L,
                                                                                    position);
  SY_CUDA_LAUNCHED();
  decode_weighted_sum<<<cuda::blocks_for(B * C), cuda::kBlock, 0, stream_>>>(
      out.data<float>(), scores.data<float>(), v_cache.data<float>(), B, L, n_heads, D, position,
      bf16_operands());
  SY_CUDA_LAUNCHED();
}

void CudaOps::attention_forward_impl(Tensor out, AttentionCache& c, const Tensor& qkv,
                                     int64_t n_heads, bool causal) {
  const AttnDims d = attention_dims(qkv, n_heads, c);
  const int64_t TD = d.Tn * d.D, TT = d.Tn * d.Tn, BH = d.B * d.NH, n = BH * TD;
  split_heads<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(
      c.q.data<float>(), c.k.data<float>(), c.v.data<float>(), qkv.data<float>(), d.B, d.Tn, d.NH,
      d.D);
  SY_CUDA_LAUNCHED();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d.D));
  gemm_strided_batched(false, true, d.Tn, d.Tn, d.D, scale, c.q, TD, c.k, TD, 0.0, c.probs, TT, BH);
  masked_softmax<<<static_cast<unsigned>(BH * d.Tn), cuda::kBlock, 0, stream_>>>(
      c.probs.data<float>(), d.Tn, causal);
  SY_CUDA_LAUNCHED();
  gemm_strided_batched(false, false, d.Tn, d.D, d.Tn, 1.0, c.probs, TT, c.v, TD, 0.0, c.out_heads,
                       TD, BH);
  merge_heads<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(
      out.data<float>(), c.out_heads.data<float>(), nullptr, nullptr, 1, d.B, d.Tn, d.NH, d.D);
  SY_CUDA_LAUNCHED();
}

void CudaOps::attention_backward_impl(Tensor dqkv, AttentionCache& c, const Tensor& dout,
                                      int64_t n_heads, bool causal) {
  (void)causal;  // masked probabilities are exactly 0, so their gradient vanishes by itself
  const AttnDims d = attention_dims(dqkv, n_heads, c);
  const int64_t TD = d.Tn * d.D, TT = d.Tn * d.Tn, BH = d.B * d.NH, n = BH * TD;
  Tensor douth = c.out_heads;  // free in the backward: holds dout split into heads
  split_one<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(douth.data<float>(),
                                                                dout.data<float>(), d.B, d.Tn,
                                                                d.NH, d.D);
  SY_CUDA_LAUNCHED();
  gemm_strided_batched(false, true, d.Tn, d.Tn, d.D, 1.0, douth, TD, c.v, TD, 0.0, c.dprobs, TT, BH);
  gemm_strided_batched(true, false, d.Tn, d.D, d.Tn, 1.0, c.probs, TT, douth, TD, 0.0, c.dv, TD, BH);
  softmax_rows_backward<<<static_cast<unsigned>(BH * d.Tn), cuda::kBlock, 0, stream_>>>(
      c.dprobs.data<float>(), c.probs.data<float>(), d.Tn);
  SY_CUDA_LAUNCHED();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d.D));
  gemm_strided_batched(false, false, d.Tn, d.D, d.Tn, scale, c.dprobs, TT, c.k, TD, 0.0, c.dq, TD, BH);
  gemm_strided_batched(true, false, d.Tn, d.D, d.Tn, scale, c.dprobs, TT, c.q, TD, 0.0, c.dk, TD, BH);
  merge_heads<<<cuda::blocks_for(3 * n), cuda::kBlock, 0, stream_>>>(
      dqkv.data<float>(), c.dq.data<float>(), c.dk.data<float>(), c.dv.data<float>(), 3, d.B, d.Tn,
      d.NH, d.D);
  SY_CUDA_LAUNCHED();
}

}  // namespace sy
