#include "optim/adam.h"

#include <cmath>

namespace sy {

Adam::Adam(Ops& ops, const OptimConfig& cfg, std::vector<OptimParam> params)
    : ops_(ops), cfg_(cfg), params_(std::move(params)) {
  int64_t total = 0;
  DType dtype = params_.empty() ? DType::f32 : params_[0].value.dtype;
  for (const OptimParam& p : params_) {
    offsets_.push_back(total);
    total += p.value.numel();
  }
  const size_t bytes = static_cast<size_t>(total) * dtype_size(dtype);
  m_buf_ = Buffer(ops, bytes);
  v_buf_ = Buffer(ops, bytes);
  m_ = m_buf_.as(dtype, {total});
  v_ = v_buf_.as(dtype, {total});
}

void Adam::step(double lr, double grad_scale) {
  ++step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const OptimParam& p = params_[i];
    const int64_t n = p.value.numel();
    Ops::AdamArgs a{lr,
                    cfg_.beta1,
                    cfg_.beta2,
                    cfg_.eps,
                    p.decay ? cfg_.weight_decay : 0.0,
                    cfg_.kind == OptimizerKind::adamw,
                    step_,
                    grad_scale};
    ops_.adam_update(p.value.flat(), p.grad.flat(), m_.view({n}, offsets_[i]),
                     v_.view({n}, offsets_[i]), a);
  }
}

double global_grad_norm(Ops& ops, std::initializer_list<Tensor> grads) {
  double s = 0;
  for (const Tensor& g : grads) s += ops.sum_squares(g);
  return std::sqrt(s);
}

double clip_factor(double norm, double max_norm) {
  if (max_norm <= 0 || !(norm > max_norm)) return 1.0;
  return max_norm / (norm + 1e-6);
}

}  // namespace sy
