// MoE dispatch (gather rows), combine (weighted scatter-add, token-major so the
// summation order is fixed) and per-slot dot products, on the CPU.
#include "backend/cpu/cpu_ops_impl.h"

namespace sy {
namespace {

template <class T>
void gather(T* out, const T* x, const int32_t* rows, const T* w, int64_t S, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < S; ++i) {
    const T* src = x + static_cast<int64_t>(rows[i]) * C;
    T* dst = out + i * C;
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
    const T* x = a + i * C;
    const T* y = b + static_cast<int64_t>(rows[i]) * C;
    T s = 0;
    for (int64_t c = 0; c < C; ++c) s += x[c] * y[c];
    out[i] = s;
  }
}

void check_rows(const Tensor& rows, int64_t n, int64_t limit, const char* what) {
  check_dtype(rows, DType::i32, what);
  check_numel(rows, n, what);
  const int32_t* r = rows.data<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    SY_CHECK(r[i] >= 0 && r[i] < limit, "{}[{}] = {} outside [0, {})", what, i, r[i], limit);
}

}  // namespace

void CpuOps::gather_rows(Tensor out, const Tensor& x, const Tensor& rows, const Tensor& w) {
  const int64_t C = x.dim(-1), N = x.numel() / C, S = rows.numel();
  check_numel(out, S * C, "gather_rows out");
  check_rows(rows, S, N, "gather_rows rows");
  if (!w.empty()) check_numel(w, S, "gather_rows weights");
  SY_FLOAT_DISPATCH(x.dtype, gather<T>(out.data<T>(), x.data<T>(), rows.data<int32_t>(),
                                       w.empty() ? nullptr : w.data<T>(), S, C));
}

void CpuOps::combine_rows(Tensor out, const Tensor& y, const Tensor& begin, const Tensor& slots,
                          const Tensor& w) {
  const int64_t C = out.dim(-1), N = out.numel() / C, S = y.numel() / C;
  check_dtype(begin, DType::i32, "combine_rows begin");
  check_numel(begin, N + 1, "combine_rows begin");
  const int32_t* b = begin.data<int32_t>();
  SY_CHECK(b[0] == 0 && b[N] == slots.numel(), "combine_rows: begin spans [{}, {}) of {} slots", b[0], b[N], slots.numel());
  check_rows(slots, slots.numel(), S, "combine_rows slots");
  if (!w.empty()) check_numel(w, S, "combine_rows weights");
  SY_FLOAT_DISPATCH(y.dtype, combine<T>(out.data<T>(), y.data<T>(), b, slots.data<int32_t>(),
                                        w.empty() ? nullptr : w.data<T>(), N, C));
}

void CpuOps::row_dots(Tensor out, const Tensor& a, const Tensor& b, const Tensor& rows) {
  const int64_t C = a.dim(-1), S = a.numel() / C, N = b.numel() / C;
  check_numel(out, S, "row_dots out");
  check_rows(rows, S, N, "row_dots rows");
  SY_FLOAT_DISPATCH(a.dtype, dots<T>(out.data<T>(), a.data<T>(), b.data<T>(), rows.data<int32_t>(), S, C));
}

}  // namespace sy
