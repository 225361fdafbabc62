#pragma once
// Plain loop kernels of the CPU backend, templated over the float type. Each
// function is the CPU reference of the op of the same name in backend/ops.h.
#include <cstdint>

#include "backend/ops.h"

namespace sy::cpu {

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, const T* B,
          T beta, T* C);

template <class T>
void embedding_forward(T* out, const int32_t* ids, const T* wte, const T* wpe, int64_t B,
                       int64_t Tn, int64_t C, int64_t V);
template <class T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* ids, int64_t B,
                        int64_t Tn, int64_t C);

template <class T>
void norm_forward(NormKind kind, T* out, T* mean, T* rstd, const T* x, const T* w, const T* b,
                  int64_t N, int64_t C, T eps);
template <class T>
void norm_backward(NormKind kind, T* dx, T* dw, T* db, const T* dout, const T* x, const T* w,
                   const T* mean, const T* rstd, int64_t N, int64_t C);

template <class T>
void activation_forward(Activation act, T* out, const T* x, int64_t n);
template <class T>
void activation_backward(Activation act, T* dx, const T* dout, const T* x, int64_t n);
template <class T>
void glu_forward(Activation act, T* h, const T* ag, int64_t N, int64_t H);
template <class T>
void glu_backward(Activation act, T* dag, const T* dh, const T* ag, int64_t N, int64_t H);

template <class T>
void softmax_forward(T* out, const T* x, int64_t rows, int64_t cols);
template <class T>
void softmax_backward(T* dx, const T* dout, const T* out, int64_t rows, int64_t cols);

template <class T>
void cross_entropy_forward(T* loss, T* nll, T* lse, const T* logits, const int32_t* targets,
                           int64_t N, int64_t V, T smoothing);
template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets,
                            int64_t N, int64_t V, T smoothing, T scale);

template <class T>
void adam_update(T* p, const T* g, T* m, T* v, int64_t n, const Ops::AdamArgs& a);

}  // namespace sy::cpu
