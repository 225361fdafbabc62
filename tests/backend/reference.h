#pragma once
// Naive double-precision references for the forward ops: plain loops written from
// the formulas, sharing no code with any backend.
#include <cmath>
#include <cstdint>
#include <vector>

namespace sy::ref {

using Vec = std::vector<double>;

// C[M,N] = alpha·op(A)·op(B) + beta·C, row-major.
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const Vec& A,
                 const Vec& B, double beta, Vec& C) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += (ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
      C[i * N + j] = alpha * s + beta * C[i * N + j];
    }
}

inline double act(int kind, double x) {  // 0 gelu (tanh form), 1 silu, 2 relu
  if (kind == 0) return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  if (kind == 1) return x / (1 + std::exp(-x));
  return x > 0 ? x : 0;
}

inline Vec layernorm(const Vec& x, const Vec& w, const Vec& b, int64_t N, int64_t C, double eps,
                     bool rms) {
  Vec out(x.size());
  for (int64_t i = 0; i < N; ++i) {
    double mu = 0, var = 0;
    if (!rms) {
      for (int64_t c = 0; c < C; ++c) mu += x[i * C + c];
      mu /= C;
    }
    for (int64_t c = 0; c < C; ++c) var += (x[i * C + c] - mu) * (x[i * C + c] - mu);
    var /= C;
    for (int64_t c = 0; c < C; ++c)
      out[i * C + c] = (x[i * C + c] - mu) / std::sqrt(var + eps) * w[c] + (rms ? 0 : b[c]);
  }
  return out;
}

inline Vec softmax(const Vec& x, int64_t rows, int64_t cols) {
  Vec out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -INFINITY, s = 0;
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, x[r * cols + c]);
    for (int64_t c = 0; c < cols; ++c) s += std::exp(x[r * cols + c] - mx);
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = std::exp(x[r * cols + c] - mx) / s;
  }
  return out;
}

// qkv [B,T,3C] → out [B,T,C], one head at a time, straight from the definition.
// lse (optional): [B, NH, T] each row's log Σ_j exp(s_j) over its unmasked scores.
inline Vec attention(const Vec& qkv, int64_t B, int64_t T, int64_t C, int64_t NH, bool causal,
                     Vec* lse = nullptr) {
  const int64_t D = C / NH;
  Vec out(static_cast<size_t>(B * T * C), 0.0);
  if (lse) lse->assign(static_cast<size_t>(B * NH * T), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(static_cast<size_t>(T), -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
          if (causal && j > i) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += qkv[(b * T + i) * 3 * C + h * D + d] * qkv[(b * T + j) * 3 * C + C + h * D + d];
          s[j] = dot / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (int64_t j = 0; j < T; ++j) z += std::isinf(s[j]) ? 0 : std::exp(s[j] - mx);
        if (lse) (*lse)[static_cast<size_t>((b * NH + h) * T + i)] = mx + std::log(z);
        for (int64_t j = 0; j < T; ++j) {
          if (std::isinf(s[j])) continue;
          const double p = std::exp(s[j] - mx) / z;
          for (int64_t d = 0; d < D; ++d)
            out[(b * T + i) * C + h * D + d] += p * qkv[(b * T + j) * 3 * C + 2 * C + h * D + d];
        }
      }
  return out;
}

// Per-row label-smoothed loss and NLL; rows with target < 0 give 0.
inline void cross_entropy(const Vec& z, const std::vector<int32_t>& y, int64_t N, int64_t V,
                          double eps, Vec& loss, Vec& nll) {
  loss.assign(static_cast<size_t>(N), 0.0);
  nll.assign(static_cast<size_t>(N), 0.0);
  for (int64_t i = 0; i < N; ++i) {
    if (y[i] < 0) continue;
    double mx = -INFINITY, s = 0;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, z[i * V + v]);
    for (int64_t v = 0; v < V; ++v) s += std::exp(z[i * V + v] - mx);
    const double lse = mx + std::log(s);
    double smooth = 0;  // mean_v(-log p_v)
    for (int64_t v = 0; v < V; ++v) smooth += (lse - z[i * V + v]) / V;
    nll[i] = lse - z[i * V + y[i]];
    loss[i] = (1 - eps) * nll[i] + eps * smooth;
  }
}

}  // namespace sy::ref
