// Fused (flash-style) attention on the CPU: the algorithm of the CUDA kernel
// (cuda_attention_fused.cu) written as plain loops, in the compute dtype T (fp32
// sums for f32, as the GPU keeps them). It is the CPU op of the fused path and the
// reference its CUDA kernel is checked against; the batched-GEMM attention
// (cpu_attention.cpp) stays the reference for both. Forward: per query row, key
// tiles of kFusedAttentionTile with an online softmax (running max m, running sum l,
// output rescaled when m grows). Backward: the probabilities recomputed from the
// saved log-sum-exp, dq per query row, dk and dv per key row: every gradient
// element is one sum in a fixed order, nothing is accumulated across threads.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_math.h"
#include "backend/cpu/cpu_ops_impl.h"
#include "core/bf16.h"

namespace sy {
namespace {

// Rounds an operand of a product to bf16 when the mode asks for it (f32 only).
template <class T>
struct Operand {
  bool bf16;
  T operator()(T x) const {
    if constexpr (std::is_same_v<T, float>) return bf16 ? round_to_bf16(x) : x;
    return x;
  }
};

// Where head h of row (b, t) of q, k or v (part 0, 1, 2) starts in qkv [B,T,3,NH,D].
struct QkvLayout {
  int64_t Tn, C, D;
  int64_t at(int64_t b, int64_t t, int part, int64_t h) const {
    return (b * Tn + t) * 3 * C + part * C + h * D;
  }
  int64_t row(int64_t b, int64_t t, int64_t h) const { return (b * Tn + t) * C + h * D; }  // [B,T,C]
};

template <class T>
void fused_forward(T* out, T* lse, const T* qkv, int64_t B, int64_t Tn, int64_t NH, int64_t D,
                   bool causal, Operand<T> r) {
  const QkvLayout L{Tn, NH * D, D};
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const int64_t tile = kFusedAttentionTile;
#pragma omp parallel
  {
    std::vector<T> q(static_cast<size_t>(D)), o(static_cast<size_t>(D)), s(static_cast<size_t>(tile));
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < NH; ++h)
        for (int64_t i = 0; i < Tn; ++i) {
          for (int64_t d = 0; d < D; ++d) q[d] = r(qkv[L.at(b, i, 0, h) + d]);
          std::fill(o.begin(), o.end(), T(0));
          T m = -INFINITY, l = 0;
          const int64_t end = causal ? i + 1 : Tn;
          for (int64_t j0 = 0; j0 < end; j0 += tile) {
            const int64_t n = std::min(tile, end - j0);
            T mt = -INFINITY;
            for (int64_t jj = 0; jj < n; ++jj) {
              const T* k = qkv + L.at(b, j0 + jj, 1, h);
              T dot = 0;
              for (int64_t d = 0; d < D; ++d) dot += q[d] * r(k[d]);
              s[jj] = dot * scale;
              mt = std::max(mt, s[jj]);
            }
            const T mn = std::max(m, mt);
            const T corr = std::exp(m - mn);  // 0 on the first tile (m = -inf)
            T sum = 0;
            for (int64_t d = 0; d < D; ++d) o[d] *= corr;
            for (int64_t jj = 0; jj < n; ++jj) {
              const T p = std::exp(s[jj] - mn);
              sum += p;
              const T pr = r(p);
              const T* v = qkv + L.at(b, j0 + jj, 2, h);
              for (int64_t d = 0; d < D; ++d) o[d] += pr * r(v[d]);
            }
            l = l * corr + sum;
            m = mn;
          }
          T* y = out + L.row(b, i, h);
          for (int64_t d = 0; d < D; ++d) y[d] = o[d] / l;
          lse[(b * NH + h) * Tn + i] = m + std::log(l);
        }
  }
}

// p and dS of one (query i, key j) pair of head h: p = exp(scale·q·k − lse_i),
// ds = p·(dout_i·v_j − delta_i); the CUDA kernels compute both the same way in both
// of their passes.
template <class T>
struct PairGrad {
  T p, ds;
};

template <class T>
PairGrad<T> pair_grad(const T* q, const T* dO, const T* k, const T* v, int64_t D, T scale, T lse,
                      T delta, Operand<T> r) {
  T dot = 0, dp = 0;
  for (int64_t d = 0; d < D; ++d) {
    dot += q[d] * r(k[d]);
    dp += dO[d] * r(v[d]);
  }
  const T p = std::exp(dot * scale - lse);
  return {p, p * (dp - delta)};
}

template <class T>
void fused_backward(T* dqkv, T* delta, const T* dout, const T* qkv, const T* out, const T* lse,
                    int64_t B, int64_t Tn, int64_t NH, int64_t D, bool causal, Operand<T> r) {
  const QkvLayout L{Tn, NH * D, D};
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  // delta = Σ_d dout·out per row (fp32: the GPU does not round it either)
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t i = 0; i < Tn; ++i) {
        T acc = 0;
        for (int64_t d = 0; d < D; ++d) acc += dout[L.row(b, i, h) + d] * out[L.row(b, i, h) + d];
        delta[(b * NH + h) * Tn + i] = acc;
      }
#pragma omp parallel
  {
    std::vector<T> a(static_cast<size_t>(D)), g(static_cast<size_t>(D)), acc(static_cast<size_t>(D)),
        acc2(static_cast<size_t>(D));
    // dq_i = scale · Σ_j ds_ij k_j
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < NH; ++h)
        for (int64_t i = 0; i < Tn; ++i) {
          const int64_t row = (b * NH + h) * Tn + i;
          for (int64_t d = 0; d < D; ++d) {
            a[d] = r(qkv[L.at(b, i, 0, h) + d]);
            g[d] = r(dout[L.row(b, i, h) + d]);
          }
          std::fill(acc.begin(), acc.end(), T(0));
          for (int64_t j = 0; j < (causal ? i + 1 : Tn); ++j) {
            const T* k = qkv + L.at(b, j, 1, h);
            const PairGrad<T> pg = pair_grad(a.data(), g.data(), k, qkv + L.at(b, j, 2, h), D, scale,
                                             lse[row], delta[row], r);
            const T ds = r(pg.ds);
            for (int64_t d = 0; d < D; ++d) acc[d] += ds * r(k[d]);
          }
          T* dq = dqkv + L.at(b, i, 0, h);
          for (int64_t d = 0; d < D; ++d) dq[d] = acc[d] * scale;
        }
    // dk_j = scale · Σ_i ds_ij q_i;  dv_j = Σ_i p_ij dout_i
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < NH; ++h)
        for (int64_t j = 0; j < Tn; ++j) {
          const T* k = qkv + L.at(b, j, 1, h);
          const T* v = qkv + L.at(b, j, 2, h);
          std::fill(acc.begin(), acc.end(), T(0));
          std::fill(acc2.begin(), acc2.end(), T(0));
          for (int64_t i = causal ? j : 0; i < Tn; ++i) {
            const int64_t row = (b * NH + h) * Tn + i;
            for (int64_t d = 0; d < D; ++d) {
              a[d] = r(qkv[L.at(b, i, 0, h) + d]);
              g[d] = r(dout[L.row(b, i, h) + d]);
            }
            const PairGrad<T> pg = pair_grad(a.data(), g.data(), k, v, D, scale, lse[row], delta[row], r);
            const T p = r(pg.p), ds = r(pg.ds);
            for (int64_t d = 0; d < D; ++d) {
              acc[d] += ds * a[d];
              acc2[d] += p * g[d];
            }
          }
          T* dk = dqkv + L.at(b, j, 1, h);
          T* dv = dqkv + L.at(b, j, 2, h);
          for (int64_t d = 0; d < D; ++d) {
            dk[d] = acc[d] * scale;
            dv[d] = acc2[d];
          }
        }
  }
}

}  // namespace

void CpuOps::attention_fused_forward_impl(Tensor out, Tensor lse, const Tensor& qkv, int64_t n_heads,
                                          bool causal) {
  const int64_t B = qkv.dim(0), Tn = qkv.dim(1), D = qkv.dim(2) / 3 / n_heads;
  SY_FLOAT_DISPATCH(qkv.dtype, fused_forward<T>(out.data<T>(), lse.data<T>(), qkv.data<T>(), B, Tn,
                                                n_heads, D, causal, Operand<T>{bf16_operands()}));
}

void CpuOps::attention_fused_backward_impl(Tensor dqkv, Tensor delta, const Tensor& dout,
                                           const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                           int64_t n_heads, bool causal) {
  const int64_t B = qkv.dim(0), Tn = qkv.dim(1), D = qkv.dim(2) / 3 / n_heads;
  SY_FLOAT_DISPATCH(qkv.dtype,
                    fused_backward<T>(dqkv.data<T>(), delta.data<T>(), dout.data<T>(), qkv.data<T>(),
                                      out.data<T>(), lse.data<T>(), B, Tn, n_heads, D, causal,
                                      Operand<T>{bf16_operands()}));
}

}  // namespace sy
