// MoE dispatch (gather rows), combine (weighted scatter-add, token-major so the
// summation order is fixed) and per-slot dot products, on the CPU.
#include "backend/cpu/cpu_ops_impl.h"

namespace sy {
namespace {

template <class T>
void gather(T* out, const T* x, const int32_t* rows, const T* w, int64_t S, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < S; ++i) {
    T* dst = out + i * C;
    if (rows[i] < 0) {  // an empty slot
      for (int64_t c = 0; c < C; ++c) dst[c] = T(0);
      continue;
    }
    const T* src = x + static_cast<int64_t>(rows[i]) * C;
    const T wi = w ? w[i] : T(1);
    for (int64_t c = 0; c < C; ++c) dst[c] = wi * src[c];
  }
}

template <class T>
void combine(T* out, const T* y, const int32_t* begin, const int32_t* slots, const T* w, int64_t N,
             int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < N; ++t) {
    T* dst = out + t * C;
    for (int32_t j = begin[t]; j < begin[t + 1]; ++j) {
      const int64_t s = slots[j];
      const T ws = w ? w[s] : T(1);
      const T* src = y + s * C;
      for (int64_t c = 0; c < C; ++c) dst[c] += ws * src[c];
    }
  }
}

template <class T>
void dots(T* out, const T* a, const T* b, const int32_t* rows, int64_t S, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < S; ++i) {
    if (rows[i] < 0) {  // an empty slot
      out[i] = T(0);
      continue;
    }
    const T* x = a + i * C;
    const T* y = b + static_cast<int64_t>(rows[i]) * C;
    T s = 0;
    for (int64_t c = 0; c < C; ++c) s += x[c] * y[c];
    out[i] = s;
  }
}

}  // namespace

void CpuOps::gather_rows_impl(Tensor out, const Tensor& x, const Tensor& rows, const Tensor& w) {
  const int64_t C = x.dim(-1), S = rows.numel();
  SY_FLOAT_DISPATCH(x.dtype, gather<T>(out.data<T>(), x.data<T>(), rows.data<int32_t>(),
                                       w.empty() ? nullptr : w.data<T>(), S, C));
}

void CpuOps::combine_rows_impl(Tensor out, const Tensor& y, const Tensor& begin,
                               const Tensor& slots, const Tensor& w) {
  const int64_t C = out.dim(-1), N = out.numel() / C;
  SY_FLOAT_DISPATCH(y.dtype, combine<T>(out.data<T>(), y.data<T>(), begin.data<int32_t>(),
                                        slots.data<int32_t>(), w.empty() ? nullptr : w.data<T>(),
                                        N, C));
}

void CpuOps::row_dots_impl(Tensor out, const Tensor& a, const Tensor& b, const Tensor& rows) {
  const int64_t C = a.dim(-1), S = a.numel() / C;
  SY_FLOAT_DISPATCH(a.dtype, dots<T>(out.data<T>(), a.data<T>(), b.data<T>(), rows.data<int32_t>(), S, C));
}

}  // namespace sy
