#pragma once
// The CpuOps class (private to the CPU backend): shape checks and dtype dispatch
// in front of the kernels of cpu_kernels.h.
#include "backend/cpu/cpu_kernels.h"
#include "backend/op_checks.h"
#include "backend/ops.h"
#include "core/errors.h"

namespace sy {

// Runs `body` with T bound to the C++ type of a floating dtype.
#define SY_FLOAT_DISPATCH(dtype, ...)                                                     \
  switch (dtype) {                                                                        \
    case DType::f32: {                                                                    \
      using T = float;                                                                    \
      __VA_ARGS__;                                                                        \
      break;                                                                              \
    }                                                                                     \
    case DType::f64: {                                                                    \
      using T = double;                                                                   \
      __VA_ARGS__;                                                                        \
      break;                                                                              \
    }                                                                                     \
    default: SY_CHECK(false, "op needs a floating dtype, got {}", dtype_name(dtype));     \
  }

class CpuOps final : public Ops {
 public:
  CpuOps();
  std::string name() const override;
  Device device() const override { return Device::cpu; }
  void* allocate(size_t bytes) override;
  void deallocate(void* p) override;

  void copy(Tensor dst, const Tensor& src) override;
  void to_host(void* dst, const Tensor& src) override;
  void from_host(Tensor dst, const void* src) override;
  void fill(Tensor x, double value) override;
  void set_threads(int n) override;

  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const Tensor& A,
            const Tensor& B, double beta, Tensor C) override;
  void gemm_strided_batched(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                            const Tensor& A, int64_t sa, const Tensor& B, int64_t sb, double beta,
                            Tensor C, int64_t sc, int64_t batch) override;

  void embedding_forward(Tensor out, const Tensor& ids, const Tensor& wte,
                         const Tensor& wpe) override;
  void embedding_backward(Tensor dwte, Tensor dwpe, const Tensor& dout,
                          const Tensor& ids) override;
  void norm_forward(NormKind kind, Tensor out, Tensor mean, Tensor rstd, const Tensor& x,
                    const Tensor& w, const Tensor& b, double eps) override;
  void norm_backward(NormKind kind, Tensor dx, Tensor dw, Tensor db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, const Tensor& mean,
                     const Tensor& rstd) override;
  void activation_forward(Activation act, Tensor out, const Tensor& x) override;
  void activation_backward(Activation act, Tensor dx, const Tensor& dout,
                           const Tensor& x) override;
  void glu_forward(Activation act, Tensor h, const Tensor& ag) override;
  void glu_backward(Activation act, Tensor dag, const Tensor& dh, const Tensor& ag) override;
  void softmax_forward(Tensor out, const Tensor& x) override;
  void softmax_backward(Tensor dx, const Tensor& dout, const Tensor& out) override;
  void attention_forward(Tensor out, AttentionCache& cache, const Tensor& qkv, int64_t n_heads,
                         bool causal) override;
  void attention_backward(Tensor dqkv, AttentionCache& cache, const Tensor& dout,
                          int64_t n_heads, bool causal) override;
  void cross_entropy_forward(Tensor loss, Tensor nll, Tensor lse, const Tensor& logits,
                             const Tensor& targets, double smoothing) override;
  void cross_entropy_backward(Tensor dlogits, const Tensor& logits, const Tensor& lse,
                              const Tensor& targets, double smoothing, double scale) override;
  void gather_rows(Tensor out, const Tensor& x, const Tensor& rows, const Tensor& w) override;
  void combine_rows(Tensor out, const Tensor& y, const Tensor& begin, const Tensor& slots,
                    const Tensor& w) override;
  void row_dots(Tensor out, const Tensor& a, const Tensor& b, const Tensor& rows) override;
  void add(Tensor y, const Tensor& x) override;
  void scale(Tensor x, double s) override;
  double sum_squares(const Tensor& x) override;
  double sum(const Tensor& x) override;
  void adam_update(Tensor param, const Tensor& grad, Tensor m, Tensor v,
                   const AdamArgs& a) override;
};

}  // namespace sy
