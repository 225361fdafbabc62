#pragma once
// Trains a model on one fixed batch with Adam (lr 1e-2, no decay, clipping at 1):
// the loop of the memorisation tests. Returns the NLL of every step.
#include <functional>
#include <vector>

#include "model/transformer.h"
#include "optim/adam.h"

namespace sy::test {

inline std::vector<double> train_fixed_batch(Ops& ops, Transformer& model, const std::vector<int32_t>& ids,
                                             const std::vector<int32_t>& targets, int steps,
                                             const std::function<void(int)>& before_step = {}) {
  OptimConfig oc;
  oc.lr = 1e-2;
  oc.weight_decay = 0.0;
  std::vector<OptimParam> params;
  ParamStore& ps = model.params();
  for (ParamId p = 0; p < ps.size(); ++p) params.push_back({ps.value(p), ps.grad(p), true});
  Adam adam(ops, oc, params);
  std::vector<double> nll;
  for (int s = 0; s < steps; ++s) {
    if (before_step) before_step(s);
    ps.zero_grads();
    const LossSums l = model.forward(ids.data(), targets.data());
    nll.push_back(l.nll / static_cast<double>(l.count));
    model.backward(1.0 / static_cast<double>(l.count));
    adam.step(oc.lr, clip_factor(global_grad_norm(ops, {ps.grads()}), 1.0));
  }
  return nll;
}

}  // namespace sy::test
