#pragma once
// Elementwise math for the CPU kernels. For float, exp is a branch-free Cephes-style
// approximation (≤ 2 ulp on [-87, 88]) that GCC vectorises, because glibc's
// scalar expf/tanhf dominated the step in profiles; double (gradient checks) uses
// the C library.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>

#include "backend/ops.h"

namespace sy::cpu {

inline float exp_approx(float x) {
  x = std::max(std::min(x, 88.7f), -87.3f);
  const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // Cody-Waite ln 2 split
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

template <class T>
inline T exp_fast(T x) {
  if constexpr (std::is_same_v<T, float>) return exp_approx(x);
  else return std::exp(x);
}

// tanh(u) = 1 - 2 / (1 + e^{2u}); saturates cleanly at ±1.
template <class T>
inline T tanh_fast(T u) {
  if constexpr (std::is_same_v<T, float>) return T(1) - T(2) / (T(1) + exp_approx(T(2) * u));
  else return std::tanh(u);
}

// Activation value and derivative. GELU is the tanh form (GPT-2, most GEGLU models).
template <Activation A, class T>
inline void act_value_grad(T x, T& f, T& df) {
  if constexpr (A == Activation::gelu) {
    const T k = T(0.7978845608028654), c = T(0.044715);
    const T th = tanh_fast(k * (x + c * x * x * x));
    f = T(0.5) * x * (T(1) + th);
    df = T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * k * (T(1) + T(3) * c * x * x);
  } else if constexpr (A == Activation::silu) {
    const T s = T(1) / (T(1) + exp_fast(-x));
    f = x * s;
    df = s * (T(1) + x * (T(1) - s));
  } else {
    f = x > T(0) ? x : T(0);
    df = x > T(0) ? T(1) : T(0);
  }
}

template <Activation A, class T>
inline T act_value(T x) {
  T f, df;
  act_value_grad<A>(x, f, df);
  return f;
}

}  // namespace sy::cpu
