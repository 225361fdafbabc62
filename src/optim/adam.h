#pragma once
// Adam / AdamW over a list of parameter tensors, with global-norm clipping.
#include <cstdint>
#include <vector>

#include "backend/ops.h"
#include "optim/optim_config.h"

namespace sy {

struct OptimParam {
  Tensor value, grad;
  bool decay = true;  // weight decay applies
};

class Adam {
 public:
  Adam(Ops& ops, const OptimConfig& cfg, std::vector<OptimParam> params);
  // One update with learning rate `lr`, gradients multiplied by `grad_scale` first
  // (clipping factor times any averaging). Increments the step count.
  void step(double lr, double grad_scale);
  int64_t steps_taken() const { return step_; }
  void set_steps_taken(int64_t s) { step_ = s; }  // resuming
  Tensor first_moments() const { return m_; }   // flat, in parameter order
  Tensor second_moments() const { return v_; }  // flat, in parameter order

 private:
  Ops& ops_;
  OptimConfig cfg_;
  std::vector<OptimParam> params_;
  std::vector<int64_t> offsets_;
  Buffer m_buf_, v_buf_;
  Tensor m_, v_;
  int64_t step_ = 0;
};

// √(Σ ‖g‖²) over all of `grads` (accumulated in double).
double global_grad_norm(Ops& ops, std::initializer_list<Tensor> grads);
// Factor that brings a gradient of norm `norm` down to `max_norm` (1 if already
// below, or if max_norm is 0 = clipping off).
double clip_factor(double norm, double max_norm);

}  // namespace sy
