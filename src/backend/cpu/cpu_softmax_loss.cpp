#include <cmath>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_ops_impl.h"
#include "backend/cpu/cpu_math.h"

namespace sy::cpu {

template <class T>
void softmax_forward(T* out, const T* x, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xi = x + r * cols;
    T* oi = out + r * cols;
    T mx = xi[0];
    for (int64_t c = 1; c < cols; ++c) mx = xi[c] > mx ? xi[c] : mx;
    T s = 0;
    for (int64_t c = 0; c < cols; ++c) s += (oi[c] = exp_fast(xi[c] - mx));
    const T inv = T(1) / s;
    for (int64_t c = 0; c < cols; ++c) oi[c] *= inv;
  }
}

template <class T>
void softmax_backward(T* dx, const T* dout, const T* out, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* d = dout + r * cols;
    const T* y = out + r * cols;
    T dot = 0;
    for (int64_t c = 0; c < cols; ++c) dot += d[c] * y[c];
    T* dxi = dx + r * cols;
    for (int64_t c = 0; c < cols; ++c) dxi[c] = y[c] * (d[c] - dot);
  }
}

template <class T>
void cross_entropy_forward(T* loss, T* nll, T* lse, const T* logits, const int32_t* targets,
                           int64_t N, int64_t V, T smoothing) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* z = logits + i * V;
    T mx = z[0], sum_z = 0;
#pragma omp simd reduction(max : mx) reduction(+ : sum_z)
    for (int64_t v = 0; v < V; ++v) {
      mx = z[v] > mx ? z[v] : mx;
      sum_z += z[v];
    }
    T s = 0;
    #pragma omp simd reduction(+ : s)
    for (int64_t v = 0; v < V; ++v) s += exp_fast(z[v] - mx);
    const T l = mx + std::log(s);
    lse[i] = l;
    if (targets[i] < 0) {
      loss[i] = nll[i] = 0;
      continue;
    }
    const T n = l - z[targets[i]];
    nll[i] = n;
    loss[i] = (T(1) - smoothing) * n + smoothing * (l - sum_z / static_cast<T>(V));
  }
}

template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets,
                            int64_t N, int64_t V, T smoothing, T scale) {
  const T uniform = smoothing / static_cast<T>(V);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* z = logits + i * V;
    T* d = dlogits + i * V;
    const int32_t y = targets[i];
    if (y < 0) {
      for (int64_t v = 0; v < V; ++v) d[v] = 0;
      continue;
    }
    const T l = lse[i];
    #pragma omp simd
    for (int64_t v = 0; v < V; ++v) d[v] = scale * (exp_fast(z[v] - l) - uniform);
    d[y] -= scale * (T(1) - smoothing);
  }
}

template <class T>
void adam_update(T* p, const T* g, T* m, T* v, int64_t n, const Ops::AdamArgs& a) {
  const T b1 = static_cast<T>(a.beta1), b2 = static_cast<T>(a.beta2);
  const T c1 = static_cast<T>(1.0 / (1.0 - std::pow(a.beta1, static_cast<double>(a.step))));
  const T c2 = static_cast<T>(1.0 / (1.0 - std::pow(a.beta2, static_cast<double>(a.step))));
  const T lr = static_cast<T>(a.lr), eps = static_cast<T>(a.eps);
  const T wd = static_cast<T>(a.weight_decay), gs = static_cast<T>(a.grad_scale);
  const bool decoupled = a.decoupled;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T gi = g[i] * gs;
    if (!decoupled) gi += wd * p[i];
    m[i] = b1 * m[i] + (T(1) - b1) * gi;
    v[i] = b2 * v[i] + (T(1) - b2) * gi * gi;
    T upd = (m[i] * c1) / (std::sqrt(v[i] * c2) + eps);
    if (decoupled) upd += wd * p[i];
    p[i] -= lr * upd;
  }
}

#define SY_INSTANTIATE(T)                                                                      \
  template void softmax_forward<T>(T*, const T*, int64_t, int64_t);                            \
  template void softmax_backward<T>(T*, const T*, const T*, int64_t, int64_t);                 \
  template void cross_entropy_forward<T>(T*, T*, T*, const T*, const int32_t*, int64_t, int64_t, \
                                         T);                                                   \
  template void cross_entropy_backward<T>(T*, const T*, const T*, const int32_t*, int64_t,     \
                                          int64_t, T, T);                                      \
  template void adam_update<T>(T*, const T*, T*, T*, int64_t, const Ops::AdamArgs&);
SY_INSTANTIATE(float)
SY_INSTANTIATE(double)

}  // namespace sy::cpu

namespace sy {

void CpuOps::softmax_forward_impl(Tensor out, const Tensor& x) {
  const int64_t cols = x.dim(-1), rows = x.numel() / cols;
  SY_FLOAT_DISPATCH(x.dtype, cpu::softmax_forward<T>(out.data<T>(), x.data<T>(), rows, cols));
}

void CpuOps::softmax_backward_impl(Tensor dx, const Tensor& dout, const Tensor& out) {
  const int64_t cols = out.dim(-1), rows = out.numel() / cols;
  SY_FLOAT_DISPATCH(out.dtype, cpu::softmax_backward<T>(dx.data<T>(), dout.data<T>(),
                                                        out.data<T>(), rows, cols));
}

void CpuOps::cross_entropy_forward_impl(Tensor loss, Tensor nll, Tensor lse,
                                        const Tensor& logits, const Tensor& targets,
                                        double smoothing) {
  const int64_t V = logits.dim(-1), N = logits.numel() / V;
  SY_FLOAT_DISPATCH(logits.dtype,
                    cpu::cross_entropy_forward<T>(loss.data<T>(), nll.data<T>(), lse.data<T>(),
                                                  logits.data<T>(), targets.data<int32_t>(), N, V,
                                                  static_cast<T>(smoothing)));
}

void CpuOps::cross_entropy_backward_impl(Tensor dlogits, const Tensor& logits, const Tensor& lse,
                                         const Tensor& targets, double smoothing, double scale) {
  const int64_t V = logits.dim(-1), N = logits.numel() / V;
  SY_FLOAT_DISPATCH(logits.dtype, cpu::cross_entropy_backward<T>(
                                      dlogits.data<T>(), logits.data<T>(), lse.data<T>(),
                                      targets.data<int32_t>(), N, V, static_cast<T>(smoothing),
                                      static_cast<T>(scale)));
}

void CpuOps::adam_update_impl(Tensor param, const Tensor& grad, Tensor m, Tensor v,
                              const AdamArgs& a) {
  SY_FLOAT_DISPATCH(param.dtype, cpu::adam_update<T>(param.data<T>(), grad.data<T>(),
                                                     m.data<T>(), v.data<T>(), param.numel(), a));
}

}  // namespace sy
