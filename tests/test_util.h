#pragma once
// Helpers for tests: host vectors seen as tensors, seeded random fills, and a
// central finite-difference gradient in double precision.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace sy::test {

template <class T>
Tensor as_tensor(std::vector<T>& v, std::vector<int64_t> shape) {
  Tensor t;
  t.ptr = v.data();
  t.dtype = std::is_same_v<T, float> ? DType::f32 : std::is_same_v<T, double> ? DType::f64 : DType::i32;
  t.device = Device::cpu;
  t.ndim = static_cast<int>(shape.size());
  int64_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= (t.dims[i] = shape[i]);
  EXPECT_EQ(n, static_cast<int64_t>(v.size())) << "test tensor shape does not match its data";
  return t;
}

inline std::vector<double> random_vec(int64_t n, uint64_t seed, double scale = 1.0) {
  std::vector<double> v(static_cast<size_t>(n));
  const RngStream r{seed, 77};
  for (int64_t i = 0; i < n; ++i) v[i] = scale * r.normal(static_cast<uint64_t>(i));
  return v;
}

inline std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

// Max over i of |a-b| / (atol + rtol·|b|) — ≤ 1 means within tolerance everywhere.
template <class A, class B>
double tolerance_ratio(const std::vector<A>& a, const std::vector<B>& b, double rtol, double atol) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    worst = std::max(worst, d / (atol + rtol * std::abs(static_cast<double>(b[i]))));
  }
  return worst;
}

#define EXPECT_CLOSE(a, b, rtol, atol) EXPECT_LE(::sy::test::tolerance_ratio(a, b, rtol, atol), 1.0)

// d f / d x[i] by central differences, for every i of x (f reads x).
inline std::vector<double> numeric_grad(std::vector<double>& x, const std::function<double()>& f,
                                        double h = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = f();
    x[i] = saved - h;
    const double down = f();
    x[i] = saved;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

}  // namespace sy::test
