#pragma once
#include <cstdint>

#include "optim/optim_config.h"

namespace sy {

// Learning rate for 0-based `step` of `total_steps`: linear warm-up from lr/warmup
// to lr over warmup_steps, then constant, inverse-sqrt (lr·√(warmup/step)) or
// cosine down to min_lr_ratio·lr at the last step.
double learning_rate(const OptimConfig& c, int64_t step, int64_t total_steps);

}  // namespace sy
