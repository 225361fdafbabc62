#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

namespace sy {

double learning_rate(const OptimConfig& c, int64_t step, int64_t total_steps) {
  if (step < c.warmup_steps)
    return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  switch (c.schedule) {
    case Schedule::constant: return c.lr;
    case Schedule::inverse_sqrt: {
      const double w = static_cast<double>(std::max<int64_t>(c.warmup_steps, 1));
      return c.lr * std::sqrt(w / std::max(static_cast<double>(step), w));
    }
    case Schedule::cosine: {
      const int64_t span = std::max<int64_t>(total_steps - 1 - c.warmup_steps, 1);
      const double progress =
          std::min(1.0, static_cast<double>(step - c.warmup_steps) / static_cast<double>(span));
      const double floor = c.min_lr_ratio * c.lr;
      return floor + (c.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
    }
  }
  return c.lr;
}

}  // namespace sy
