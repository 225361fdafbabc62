#include <cmath>

#include "backend/cpu/cpu_kernels.h"

namespace sy::cpu {
namespace {

// GELU uses the tanh approximation (as GPT-2 and most GEGLU models do).
template <class T>
inline T act_f(Activation a, T x) {
  switch (a) {
    case Activation::gelu: {
      const T k = T(0.7978845608028654), u = k * (x + T(0.044715) * x * x * x);
      return T(0.5) * x * (T(1) + std::tanh(u));
    }
    case Activation::silu: return x / (T(1) + std::exp(-x));
    case Activation::relu: return x > T(0) ? x : T(0);
  }
  return x;
}

template <class T>
inline T act_df(Activation a, T x) {
  switch (a) {
    case Activation::gelu: {
      const T k = T(0.7978845608028654), u = k * (x + T(0.044715) * x * x * x);
      const T th = std::tanh(u);
      const T du = k * (T(1) + T(3) * T(0.044715) * x * x);
      return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * du;
    }
    case Activation::silu: {
      const T s = T(1) / (T(1) + std::exp(-x));
      return s * (T(1) + x * (T(1) - s));
    }
    case Activation::relu: return x > T(0) ? T(1) : T(0);
  }
  return T(1);
}

}  // namespace

template <class T>
void activation_forward(Activation act, T* out, const T* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = act_f(act, x[i]);
}

template <class T>
void activation_backward(Activation act, T* dx, const T* dout, const T* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] = dout[i] * act_df(act, x[i]);
}

template <class T>
void glu_forward(Activation act, T* h, const T* ag, int64_t N, int64_t H) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* a = ag + i * 2 * H;
    const T* g = a + H;
    T* hi = h + i * H;
    for (int64_t j = 0; j < H; ++j) hi[j] = act_f(act, a[j]) * g[j];
  }
}

template <class T>
void glu_backward(Activation act, T* dag, const T* dh, const T* ag, int64_t N, int64_t H) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* a = ag + i * 2 * H;
    const T* g = a + H;
    const T* d = dh + i * H;
    T* da = dag + i * 2 * H;
    T* dg = da + H;
    for (int64_t j = 0; j < H; ++j) {
      da[j] = d[j] * g[j] * act_df(act, a[j]);
      dg[j] = d[j] * act_f(act, a[j]);
    }
  }
}

#define SY_INSTANTIATE(T)                                                                    \
  template void activation_forward<T>(Activation, T*, const T*, int64_t);                    \
  template void activation_backward<T>(Activation, T*, const T*, const T*, int64_t);         \
  template void glu_forward<T>(Activation, T*, const T*, int64_t, int64_t);                  \
  template void glu_backward<T>(Activation, T*, const T*, const T*, int64_t, int64_t);
SY_INSTANTIATE(float)
SY_INSTANTIATE(double)

}  // namespace sy::cpu
