// Multi-head attention on the CPU: heads split out of qkv, then batched GEMMs over
// (batch, head) pairs and a row softmax with the causal mask folded in.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "backend/cpu/cpu_math.h"
#include "backend/cpu/cpu_ops_impl.h"
#include "core/bf16.h"
#include "backend/op_checks.h"

namespace sy {
namespace {

// qkv [B,T,3,NH,D] → q, k, v [B,NH,T,D]
template <class T>
void split_heads(T* q, T* k, T* v, const T* qkv, int64_t B, int64_t Tn, int64_t NH, int64_t D) {
  const int64_t C = NH * D;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {
      const T* row = qkv + (b * Tn + t) * 3 * C;
      for (int64_t h = 0; h < NH; ++h) {
        const int64_t o = ((b * NH + h) * Tn + t) * D;
        for (int64_t d = 0; d < D; ++d) {
          q[o + d] = row[h * D + d];
          k[o + d] = row[C + h * D + d];
          v[o + d] = row[2 * C + h * D + d];
        }
      }
    }
}

// [B,T,C] → [B,NH,T,D]
template <class T>
void split_one(T* heads, const T* x, int64_t B, int64_t Tn, int64_t NH, int64_t D) {
  const int64_t C = NH * D;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t)
      for (int64_t h = 0; h < NH; ++h)
        for (int64_t e = 0; e < D; ++e)
          heads[((b * NH + h) * Tn + t) * D + e] = x[(b * Tn + t) * C + h * D + e];
}

// [B,NH,T,D] parts → [B,T,parts·C] (parts = 1 for the output, 3 for dqkv)
template <class T>
void merge_heads(T* out, const T* const* parts, int n_parts, int64_t B, int64_t Tn, int64_t NH,
                 int64_t D) {
  const int64_t C = NH * D;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {
      T* row = out + (b * Tn + t) * n_parts * C;
      for (int p = 0; p < n_parts; ++p)
        for (int64_t h = 0; h < NH; ++h) {
          const T* src = parts[p] + ((b * NH + h) * Tn + t) * D;
          for (int64_t d = 0; d < D; ++d) row[p * C + h * D + d] = src[d];
        }
    }
}

// In place: scores → probabilities, row-wise; with `causal`, row i sees columns ≤ i.
template <class T>
void masked_softmax(T* p, int64_t rows, int64_t Tn, bool causal) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    T* row = p + r * Tn;
    const int64_t n = causal ? (r % Tn) + 1 : Tn;
    T mx = row[0];
    for (int64_t j = 1; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
    T s = 0;
    for (int64_t j = 0; j < n; ++j) s += (row[j] = cpu::exp_fast(row[j] - mx));
    const T inv = T(1) / s;
    for (int64_t j = 0; j < n; ++j) row[j] *= inv;
    for (int64_t j = n; j < Tn; ++j) row[j] = 0;
  }
}

// In place: dprobs → dscores = p ⊙ (dp − Σ_j p·dp). Masked entries have p = 0 → 0.
template <class T>
void softmax_rows_backward(T* dp, const T* p, int64_t rows, int64_t Tn) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    T* d = dp + r * Tn;
    const T* y = p + r * Tn;
    T dot = 0;
    for (int64_t j = 0; j < Tn; ++j) dot += d[j] * y[j];
    for (int64_t j = 0; j < Tn; ++j) d[j] = y[j] * (d[j] - dot);
  }
}

}  // namespace

void CpuOps::attention_forward_impl(Tensor out, AttentionCache& c, const Tensor& qkv,
                                    int64_t n_heads, bool causal) {
  const AttnDims d = attention_dims(qkv, n_heads, c);
  const int64_t TD = d.Tn * d.D, TT = d.Tn * d.Tn, BH = d.B * d.NH;
  SY_FLOAT_DISPATCH(qkv.dtype, {
    split_heads<T>(c.q.data<T>(), c.k.data<T>(), c.v.data<T>(), qkv.data<T>(), d.B, d.Tn, d.NH,
                   d.D);
  });
  const double scale = 1.0 / std::sqrt(static_cast<double>(d.D));
  gemm_strided_batched(false, true, d.Tn, d.Tn, d.D, scale, c.q, TD, c.k, TD, 0.0, c.probs, TT, BH);
  SY_FLOAT_DISPATCH(qkv.dtype, masked_softmax<T>(c.probs.data<T>(), BH * d.Tn, d.Tn, causal));
  gemm_strided_batched(false, false, d.Tn, d.D, d.Tn, 1.0, c.probs, TT, c.v, TD, 0.0, c.out_heads,
                       TD, BH);
  SY_FLOAT_DISPATCH(qkv.dtype, {
    const T* parts[1] = {c.out_heads.data<T>()};
    merge_heads<T>(out.data<T>(), parts, 1, d.B, d.Tn, d.NH, d.D);
  });
}

namespace {

// One decoding position: k, v into the caches, then each (b, h) over the cache
// rows 0..pos, in double (scores kept in `sc` as T between the passes). With bf16
// operands, q, k, the normalised probabilities and v are rounded to bf16 where the
// full pass's products round them (Ops::set_bf16_operands), so decoding still
// equals a full pass.
template <class T>
void decode_attention(T* out, const T* qkv, T* kc, T* vc, T* sc, int64_t B, int64_t L, int64_t C,
                      int64_t NH, int64_t pos, bool bf16) {
  const auto r = [bf16](double x) {
    return bf16 ? static_cast<double>(round_to_bf16(static_cast<float>(x))) : x;
  };
  const int64_t D = C / NH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      kc[(b * L + pos) * C + c] = qkv[b * 3 * C + C + c];
      vc[(b * L + pos) * C + c] = qkv[b * 3 * C + 2 * C + c];
    }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h) {
      const T* q = qkv + b * 3 * C + h * D;
      T* s = sc + (b * NH + h) * L;
      double mx = -INFINITY;
      for (int64_t t = 0; t <= pos; ++t) {
        const T* k = kc + (b * L + t) * C + h * D;
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += r(static_cast<double>(q[d])) * r(static_cast<double>(k[d]));
        s[t] = static_cast<T>(dot * scale);
        mx = std::max(mx, static_cast<double>(s[t]));
      }
      double sum = 0;
      for (int64_t t = 0; t <= pos; ++t) {
        const double e = std::exp(static_cast<double>(s[t]) - mx);
        s[t] = static_cast<T>(e);
        sum += e;
      }
      T* o = out + b * C + h * D;
      if (bf16)  // the full pass multiplies v by normalised, rounded probabilities
        for (int64_t t = 0; t <= pos; ++t) s[t] = static_cast<T>(r(static_cast<double>(s[t]) / sum));
      const double norm = bf16 ? 1.0 : sum;
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t t = 0; t <= pos; ++t)
          acc += static_cast<double>(s[t]) * r(static_cast<double>(vc[(b * L + t) * C + h * D + d]));
        o[d] = static_cast<T>(acc / norm);
      }
    }
}

}  // namespace

void CpuOps::attention_decode_impl(Tensor out, const Tensor& qkv, Tensor k_cache, Tensor v_cache,
                                   Tensor scores, int64_t position, int64_t n_heads) {
  const int64_t B = qkv.dim(0), C = qkv.dim(1) / 3, L = k_cache.dim(1);
  SY_FLOAT_DISPATCH(qkv.dtype, decode_attention<T>(out.data<T>(), qkv.data<T>(), k_cache.data<T>(),
                                                  v_cache.data<T>(), scores.data<T>(), B, L, C,
                                                  n_heads, position, bf16_operands() && std::is_same_v<T, float>));
}

void CpuOps::attention_backward_impl(Tensor dqkv, AttentionCache& c, const Tensor& dout,
                                     int64_t n_heads, bool causal) {
  (void)causal;  // masked probabilities are exactly 0, so their gradient vanishes by itself
  const AttnDims d = attention_dims(dqkv, n_heads, c);
  const int64_t TD = d.Tn * d.D, TT = d.Tn * d.Tn, BH = d.B * d.NH;
  // dout → heads; out_heads is free to hold it (the backward does not read it).
  Tensor douth = c.out_heads;
  SY_FLOAT_DISPATCH(dout.dtype, split_one<T>(douth.data<T>(), dout.data<T>(), d.B, d.Tn, d.NH, d.D));
  gemm_strided_batched(false, true, d.Tn, d.Tn, d.D, 1.0, douth, TD, c.v, TD, 0.0, c.dprobs, TT, BH);
  gemm_strided_batched(true, false, d.Tn, d.D, d.Tn, 1.0, c.probs, TT, douth, TD, 0.0, c.dv, TD, BH);
  SY_FLOAT_DISPATCH(dout.dtype,
                    softmax_rows_backward<T>(c.dprobs.data<T>(), c.probs.data<T>(), BH * d.Tn, d.Tn));
  const double scale = 1.0 / std::sqrt(static_cast<double>(d.D));
  gemm_strided_batched(false, false, d.Tn, d.D, d.Tn, scale, c.dprobs, TT, c.k, TD, 0.0, c.dq, TD, BH);
  gemm_strided_batched(true, false, d.Tn, d.D, d.Tn, scale, c.dprobs, TT, c.q, TD, 0.0, c.dk, TD, BH);
  SY_FLOAT_DISPATCH(dout.dtype, {
    const T* parts[3] = {c.dq.data<T>(), c.dk.data<T>(), c.dv.data<T>()};
    merge_heads<T>(dqkv.data<T>(), parts, 3, d.B, d.Tn, d.NH, d.D);
  });
}

}  // namespace sy
