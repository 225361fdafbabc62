#pragma once
// Label-smoothed cross-entropy over the vocabulary: (1-ε)·NLL + ε·mean_v(-log p_v).
#include <cstdint>

#include "model/layer.h"

namespace sy {

// Sums over the rows that have a target (target ≥ 0).
struct LossSums {
  double loss = 0;   // label-smoothed
  double nll = 0;    // unsmoothed negative log-likelihood
  int64_t count = 0; // rows with a target
};

class CrossEntropyLoss {
 public:
  CrossEntropyLoss(LayerEnv env, double smoothing) : env_(env), smoothing_(smoothing) {}
  void allocate(Arena& arena, int64_t n_tokens);
  // logits [N, V]; targets i32 [N]; count = rows with target ≥ 0 (known to the caller).
  LossSums forward(const Tensor& logits, const Tensor& targets, int64_t count);
  // The same for rows [first, first + n) of the N: logits [n, V] holds those rows
  // only (a chunked classifier); targets i32 [N] as in forward().
  LossSums forward_rows(const Tensor& logits, const Tensor& targets, int64_t first, int64_t count);
  // Overwrites logits [n, V] (rows first.. of the last forward) with
  // scale·∂(Σ loss)/∂logits; first = 0, n = N for the whole batch.
  void backward_rows(Tensor logits, int64_t first, double scale);
  double smoothing() const { return smoothing_; }

 private:
  LayerEnv env_;
  double smoothing_;
  Tensor loss_, nll_, lse_;  // [N]
  Tensor targets_;
};

}  // namespace sy
