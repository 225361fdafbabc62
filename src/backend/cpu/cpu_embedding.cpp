#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_ops_impl.h"

namespace sy::cpu {

template <class T>
void embedding_forward(T* out, const int32_t* ids, const T* wte, const T* wpe, int64_t B,
                       int64_t Tn, int64_t C, int64_t V) {
  (void)V;  // ids were range-checked by the caller
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {
      T* o = out + (b * Tn + t) * C;
      const T* e = wte + static_cast<int64_t>(ids[b * Tn + t]) * C;
      const T* p = wpe + t * C;
      for (int64_t c = 0; c < C; ++c) o[c] = e[c] + p[c];
    }
}

template <class T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* ids, int64_t B,
                        int64_t Tn, int64_t C) {
  // Rows of dwte are hit by repeated ids: parallel over channels keeps it race-free
  // and the summation order fixed (deterministic).
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += 16) {
    const int64_t c1 = c0 + 16 < C ? c0 + 16 : C;
    for (int64_t i = 0; i < B * Tn; ++i) {
      T* row = dwte + static_cast<int64_t>(ids[i]) * C;
      const T* d = dout + i * C;
      for (int64_t c = c0; c < c1; ++c) row[c] += d[c];
    }
    if (dwpe)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < Tn; ++t)
          for (int64_t c = c0; c < c1; ++c) dwpe[t * C + c] += dout[(b * Tn + t) * C + c];
  }
}

#define SY_INSTANTIATE(T)                                                                    \
  template void embedding_forward<T>(T*, const int32_t*, const T*, const T*, int64_t, int64_t, \
                                     int64_t, int64_t);                                      \
  template void embedding_backward<T>(T*, T*, const T*, const int32_t*, int64_t, int64_t, int64_t);
SY_INSTANTIATE(float)
SY_INSTANTIATE(double)

}  // namespace sy::cpu

namespace sy {

void CpuOps::embedding_forward_impl(Tensor out, const Tensor& ids, const Tensor& wte,
                                    const Tensor& wpe) {
  const int64_t B = ids.dim(0), Tn = ids.dim(1), V = wte.dim(0), C = wte.dim(1);
  SY_FLOAT_DISPATCH(out.dtype, cpu::embedding_forward<T>(out.data<T>(), ids.data<int32_t>(),
                                                         wte.data<T>(), wpe.data<T>(), B, Tn, C, V));
}

void CpuOps::embedding_backward_impl(Tensor dwte, Tensor dwpe, const Tensor& dout,
                                     const Tensor& ids) {
  const int64_t B = ids.dim(0), Tn = ids.dim(1), C = dwte.dim(1);
  SY_FLOAT_DISPATCH(dout.dtype,
                    cpu::embedding_backward<T>(dwte.data<T>(), dwpe.empty() ? nullptr : dwpe.data<T>(),
                                               dout.data<T>(), ids.data<int32_t>(), B, Tn, C));
}

}  // namespace sy
