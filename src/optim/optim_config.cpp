#include "optim/optim_config.h"

namespace sy {

void OptimConfig::validate(Problems& p) const {
  p.require(lr > 0, "optim.lr", lr, "must be positive");
  p.require(beta1 >= 0 && beta1 < 1, "optim.beta1", beta1, "must be in [0, 1)");
  p.require(beta2 >= 0 && beta2 < 1, "optim.beta2", beta2, "must be in [0, 1)");
  p.require(eps > 0, "optim.eps", eps, "must be positive");
  p.require(weight_decay >= 0, "optim.weight_decay", weight_decay, "must be >= 0");
  p.require(grad_clip >= 0, "optim.grad_clip", grad_clip, "must be >= 0 (0 disables clipping)");
  p.require(warmup_steps >= 0, "optim.warmup_steps", warmup_steps, "must be >= 0");
  p.require(min_lr_ratio >= 0 && min_lr_ratio <= 1, "optim.min_lr_ratio", min_lr_ratio,
            "must be in [0, 1]");
}

}  // namespace sy
