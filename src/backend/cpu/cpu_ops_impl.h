#pragma once
// The CpuOps class (private to the CPU backend): dtype dispatch in front of the
// kernels of cpu_kernels.h. Arguments arrive checked by the op front (ops.cpp).
#include "backend/cpu/cpu_kernels.h"
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
  bool computes_in(DType t) const override { return t == DType::f32 || t == DType::f64; }
  bool supports_bf16_operands() const override { return true; }
  void* allocate(size_t bytes) override;
  void deallocate(void* p) override;
  void set_threads(int n) override;
  uint64_t memory_capacity() const override;

 protected:
  void copy_impl(Tensor dst, const Tensor& src) override;
  void to_host_impl(void* dst, const Tensor& src) override;
  void from_host_impl(Tensor dst, const void* src) override;
  void fill_impl(Tensor x, double value) override;
  void gemm_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                 const Tensor& A, int64_t sa, const Tensor& B, int64_t sb, double beta, Tensor C,
                 int64_t sc, int64_t batch) override;
  void embedding_forward_impl(Tensor out, const Tensor& ids, const Tensor& wte,
                              const Tensor& wpe) override;
  void embedding_backward_impl(Tensor dwte, Tensor dwpe, const Tensor& dout,
                               const Tensor& ids) override;
  void norm_forward_impl(NormKind kind, Tensor out, Tensor mean, Tensor rstd, const Tensor& x,
                         const Tensor& w, const Tensor& b, double eps) override;
  void norm_backward_impl(NormKind kind, Tensor dx, Tensor dw, Tensor db, const Tensor& dout,
                          const Tensor& x, const Tensor& w, const Tensor& mean,
                          const Tensor& rstd) override;
  void activation_forward_impl(Activation act, Tensor out, const Tensor& x) override;
  void activation_backward_impl(Activation act, Tensor dx, const Tensor& dout,
                                const Tensor& x) override;
  void glu_forward_impl(Activation act, Tensor h, const Tensor& ag) override;
  void glu_backward_impl(Activation act, Tensor dag, const Tensor& dh, const Tensor& ag) override;
  void softmax_forward_impl(Tensor out, const Tensor& x) override;
  void softmax_backward_impl(Tensor dx, const Tensor& dout, const Tensor& out) override;
  void attention_forward_impl(Tensor out, AttentionCache& cache, const Tensor& qkv,
                              int64_t n_heads, bool causal) override;
  void attention_decode_impl(Tensor out, const Tensor& qkv, Tensor k_cache, Tensor v_cache, Tensor scores,
                             int64_t position, int64_t n_heads) override;
  void attention_backward_impl(Tensor dqkv, AttentionCache& cache, const Tensor& dout,
                               int64_t n_heads, bool causal) override;
  void attention_fused_forward_impl(Tensor out, Tensor lse, const Tensor& qkv, int64_t n_heads,
                                    bool causal) override;
  void attention_fused_backward_impl(Tensor dqkv, Tensor delta, const Tensor& dout,
                                     const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                     int64_t n_heads, bool causal) override;
  void cross_entropy_forward_impl(Tensor loss, Tensor nll, Tensor lse, const Tensor& logits,
                                  const Tensor& targets, double smoothing) override;
  void cross_entropy_backward_impl(Tensor dlogits, const Tensor& logits, const Tensor& lse,
                                   const Tensor& targets, double smoothing,
                                   double scale) override;
  void gather_rows_impl(Tensor out, const Tensor& x, const Tensor& rows,
                        const Tensor& w) override;
  void combine_rows_impl(Tensor out, const Tensor& y, const Tensor& begin, const Tensor& slots,
                         const Tensor& w) override;
  void row_dots_impl(Tensor out, const Tensor& a, const Tensor& b, const Tensor& rows) override;
  bool routes_on_backend() const override;
  void jitter_rows_impl(Tensor out, const Tensor& in, const JitterSpec& spec) override;
  void route_plan_impl(const RoutePlanTensors& plan, const RouteState& state, const RouteInputs& in,
                       const RouteSpec& spec) override;
  void route_backward_impl(Tensor dlogits, Tensor dnoise_logits, const Tensor& dgate,
                           const RoutePlanTensors& plan, const RouteState& state,
                           const RouteInputs& in, const RouteSpec& spec, double aux_scale,
                           double z_scale) override;
  void add_impl(Tensor y, const Tensor& x) override;
  void scale_impl(Tensor x, double s) override;
  double sum_impl(const Tensor& x, bool squares) override;
  void adam_update_impl(Tensor param, const Tensor& grad, Tensor m, Tensor v,
                        const AdamArgs& a) override;

 private:
  // bf16 operands: the rounded copies of A and B (grown on first use, then reused).
  std::vector<float> bf16_a_, bf16_b_;
};

}  // namespace sy
