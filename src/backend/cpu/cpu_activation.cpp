// Activations and the GLU product. Loops are instantiated per activation (the
// switch is outside them) so that they vectorise.
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_ops_impl.h"
#include "backend/cpu/cpu_math.h"

namespace sy::cpu {
namespace {

template <Activation A, class T>
void act_fwd(T* out, const T* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = act_value<A>(x[i]);
}

template <Activation A, class T>
void act_bwd(T* dx, const T* dout, const T* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T f, df;
    act_value_grad<A>(x[i], f, df);
    dx[i] = dout[i] * df;
  }
}

template <Activation A, class T>
void glu_fwd(T* h, const T* ag, int64_t N, int64_t H) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* a = ag + i * 2 * H;
    const T* g = a + H;
    T* hi = h + i * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) hi[j] = act_value<A>(a[j]) * g[j];
  }
}

template <Activation A, class T>
void glu_bwd(T* dag, const T* dh, const T* ag, int64_t N, int64_t H) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* a = ag + i * 2 * H;
    const T* g = a + H;
    const T* d = dh + i * H;
    T* da = dag + i * 2 * H;
    T* dg = da + H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      T f, df;
      act_value_grad<A>(a[j], f, df);
      da[j] = d[j] * g[j] * df;
      dg[j] = d[j] * f;
    }
  }
}

// Calls F<A>() for the runtime activation.
#define SY_ACT_DISPATCH(act, call)                                 \
  switch (act) {                                                   \
    case Activation::gelu: call(Activation::gelu); break;          \
    case Activation::silu: call(Activation::silu); break;          \
    case Activation::relu: call(Activation::relu); break;          \
  }

}  // namespace

template <class T>
void activation_forward(Activation act, T* out, const T* x, int64_t n) {
#define SY_CALL(A) act_fwd<A, T>(out, x, n)
  SY_ACT_DISPATCH(act, SY_CALL)
#undef SY_CALL
}

template <class T>
void activation_backward(Activation act, T* dx, const T* dout, const T* x, int64_t n) {
#define SY_CALL(A) act_bwd<A, T>(dx, dout, x, n)
  SY_ACT_DISPATCH(act, SY_CALL)
#undef SY_CALL
}

template <class T>
void glu_forward(Activation act, T* h, const T* ag, int64_t N, int64_t H) {
#define SY_CALL(A) glu_fwd<A, T>(h, ag, N, H)
  SY_ACT_DISPATCH(act, SY_CALL)
#undef SY_CALL
}

template <class T>
void glu_backward(Activation act, T* dag, const T* dh, const T* ag, int64_t N, int64_t H) {
#define SY_CALL(A) glu_bwd<A, T>(dag, dh, ag, N, H)
  SY_ACT_DISPATCH(act, SY_CALL)
#undef SY_CALL
}

#define SY_INSTANTIATE(T)                                                                    \
  template void activation_forward<T>(Activation, T*, const T*, int64_t);                    \
  template void activation_backward<T>(Activation, T*, const T*, const T*, int64_t);         \
  template void glu_forward<T>(Activation, T*, const T*, int64_t, int64_t);                  \
  template void glu_backward<T>(Activation, T*, const T*, const T*, int64_t, int64_t);
SY_INSTANTIATE(float)
SY_INSTANTIATE(double)

}  // namespace sy::cpu

namespace sy {

void CpuOps::activation_forward_impl(Activation act, Tensor out, const Tensor& x) {
  SY_FLOAT_DISPATCH(x.dtype,
                    cpu::activation_forward<T>(act, out.data<T>(), x.data<T>(), x.numel()));
}

void CpuOps::activation_backward_impl(Activation act, Tensor dx, const Tensor& dout,
                                      const Tensor& x) {
  SY_FLOAT_DISPATCH(x.dtype, cpu::activation_backward<T>(act, dx.data<T>(), dout.data<T>(),
                                                         x.data<T>(), x.numel()));
}

void CpuOps::glu_forward_impl(Activation act, Tensor h, const Tensor& ag) {
  const int64_t H = h.dim(-1), N = h.numel() / H;
  SY_FLOAT_DISPATCH(h.dtype, cpu::glu_forward<T>(act, h.data<T>(), ag.data<T>(), N, H));
}

void CpuOps::glu_backward_impl(Activation act, Tensor dag, const Tensor& dh, const Tensor& ag) {
  const int64_t H = dh.dim(-1), N = dh.numel() / H;
  SY_FLOAT_DISPATCH(dh.dtype, cpu::glu_backward<T>(act, dag.data<T>(), dh.data<T>(),
                                                   ag.data<T>(), N, H));
}

}  // namespace sy
