#include <cmath>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_ops_impl.h"

namespace sy::cpu {

template <class T>
void norm_forward(NormKind kind, T* out, T* mean, T* rstd, const T* x, const T* w, const T* b,
                  int64_t N, int64_t C, T eps) {
  const bool ln = kind == NormKind::layernorm;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* xi = x + i * C;
    T* oi = out + i * C;
    T mu = 0;
    if (ln) {
      for (int64_t c = 0; c < C; ++c) mu += xi[c];
      mu /= static_cast<T>(C);
    }
    T var = 0;
    for (int64_t c = 0; c < C; ++c) var += (xi[c] - mu) * (xi[c] - mu);
    const T rs = T(1) / std::sqrt(var / static_cast<T>(C) + eps);
    if (ln) {
      for (int64_t c = 0; c < C; ++c) oi[c] = (xi[c] - mu) * rs * w[c] + b[c];
      mean[i] = mu;
    } else {
      for (int64_t c = 0; c < C; ++c) oi[c] = xi[c] * rs * w[c];
    }
    rstd[i] = rs;
  }
}

template <class T>
void norm_backward(NormKind kind, T* dx, T* dw, T* db, const T* dout, const T* x, const T* w,
                   const T* mean, const T* rstd, int64_t N, int64_t C) {
  const bool ln = kind == NormKind::layernorm;
  // dx: rows are independent. xhat = (x-μ)·rstd, dxhat = dout·w.
  // layernorm: dx = rstd·(dxhat - mean(dxhat) - xhat·mean(dxhat·xhat))
  // rmsnorm:   dx = rstd·(dxhat - xhat·mean(dxhat·xhat))
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* xi = x + i * C;
    const T* di = dout + i * C;
    const T mu = ln ? mean[i] : T(0);
    const T rs = rstd[i];
    T s1 = 0, s2 = 0;
    for (int64_t c = 0; c < C; ++c) {
      const T dxh = di[c] * w[c];
      s1 += dxh;
      s2 += dxh * (xi[c] - mu) * rs;
    }
    s1 /= static_cast<T>(C);
    s2 /= static_cast<T>(C);
    T* dxi = dx + i * C;
    for (int64_t c = 0; c < C; ++c) {
      const T xh = (xi[c] - mu) * rs;
      dxi[c] += rs * (di[c] * w[c] - (ln ? s1 : T(0)) - xh * s2);
    }
  }
  // dw, db: reduce over rows; parallel over channels for a fixed summation order.
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += 16) {
    const int64_t c1 = c0 + 16 < C ? c0 + 16 : C;
    for (int64_t i = 0; i < N; ++i) {
      const T* xi = x + i * C;
      const T* di = dout + i * C;
      const T mu = ln ? mean[i] : T(0);
      for (int64_t c = c0; c < c1; ++c) {
        dw[c] += di[c] * (xi[c] - mu) * rstd[i];
        if (ln) db[c] += di[c];
      }
    }
  }
}

#define SY_INSTANTIATE(T)                                                                   \
  template void norm_forward<T>(NormKind, T*, T*, T*, const T*, const T*, const T*, int64_t, \
                                int64_t, T);                                                \
  template void norm_backward<T>(NormKind, T*, T*, T*, const T*, const T*, const T*, const T*, \
                                 const T*, int64_t, int64_t);
SY_INSTANTIATE(float)
SY_INSTANTIATE(double)

}  // namespace sy::cpu

namespace sy {

void CpuOps::norm_forward_impl(NormKind kind, Tensor out, Tensor mean, Tensor rstd,
                               const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const int64_t C = w.numel(), N = x.numel() / C;
  SY_FLOAT_DISPATCH(x.dtype, cpu::norm_forward<T>(kind, out.data<T>(), mean.data<T>(),
                                                  rstd.data<T>(), x.data<T>(), w.data<T>(),
                                                  b.data<T>(), N, C, static_cast<T>(eps)));
}

void CpuOps::norm_backward_impl(NormKind kind, Tensor dx, Tensor dw, Tensor db,
                                const Tensor& dout, const Tensor& x, const Tensor& w,
                                const Tensor& mean, const Tensor& rstd) {
  const int64_t C = w.numel(), N = x.numel() / C;
  SY_FLOAT_DISPATCH(x.dtype,
                    cpu::norm_backward<T>(kind, dx.data<T>(), dw.data<T>(), db.data<T>(),
                                          dout.data<T>(), x.data<T>(), w.data<T>(),
                                          mean.data<T>(), rstd.data<T>(), N, C));
}

}  // namespace sy
