#pragma once
// The optimizer section of a config, validated where it is defined.
#include <cstdint>
#include <string>

#include "core/problems.h"

namespace sy {

enum class OptimizerKind { adam, adamw };
enum class Schedule { constant, inverse_sqrt, cosine };

struct OptimConfig {
  OptimizerKind kind = OptimizerKind::adamw;
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // global-norm clipping threshold; 0 disables
  Schedule schedule = Schedule::cosine;
  int64_t warmup_steps = 100;
  double min_lr_ratio = 0.1;  // cosine floor, as a fraction of lr

  void validate(Problems& p) const;
};

}  // namespace sy
