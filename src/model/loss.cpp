#include "model/loss.h"

namespace sy {

void CrossEntropyLoss::allocate(Arena& arena, int64_t n_tokens) {
  loss_ = arena.make(env_.dtype, {n_tokens});
  nll_ = arena.make(env_.dtype, {n_tokens});
  lse_ = arena.make(env_.dtype, {n_tokens});
}

LossSums CrossEntropyLoss::forward(const Tensor& logits, const Tensor& targets, int64_t count) {
  targets_ = targets;
  env_.ops.cross_entropy_forward(loss_, nll_, lse_, logits, targets, smoothing_);
  return {env_.ops.sum(loss_), env_.ops.sum(nll_), count};
}

LossSums CrossEntropyLoss::forward_rows(const Tensor& logits, const Tensor& targets, int64_t first,
                                        int64_t count) {
  targets_ = targets;
  const int64_t n = logits.dim(0);
  Tensor loss = loss_.view({n}, first), nll = nll_.view({n}, first), lse = lse_.view({n}, first);
  env_.ops.cross_entropy_forward(loss, nll, lse, logits, targets.view({n}, first), smoothing_);
  return {env_.ops.sum(loss), env_.ops.sum(nll), count};
}

void CrossEntropyLoss::backward_rows(Tensor logits, int64_t first, double scale) {
  const int64_t n = logits.dim(0);
  env_.ops.cross_entropy_backward(logits, logits, lse_.view({n}, first), targets_.view({n}, first), smoothing_,
                                  scale);
}

}  // namespace sy
