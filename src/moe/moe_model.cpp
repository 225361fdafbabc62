#include "moe/moe_model.h"

namespace sy {

FfnFactory MoeModel::factory() {
  return [this](LayerEnv env, const std::string& prefix, int layer) -> std::unique_ptr<FeedForward> {
    if (!cfg_.is_moe_block(layer)) return nullptr;
    auto moe = std::make_unique<MoeLayer>(env, prefix + ".moe", model_, cfg_, layer, runtime_, shard_);
    layers_.push_back(moe.get());
    return moe;
  };
}

double MoeModel::aux_loss() const {
  double a = 0;
  for (const MoeLayer* l : layers_) a += l->aux_loss();
  return a;
}

void MoeModel::end_step(Communicator& world) {
  for (MoeLayer* l : layers_) {
    std::vector<double>& samples = l->router().threshold_samples();
    if (samples.empty()) continue;
    world.all_reduce_sum(samples);
    l->router().end_step();
  }
}

void MoeModel::snapshot() {
  stats_.clear();
  for (const MoeLayer* l : layers_) stats_.push_back(l->stats());
}

double MoeModel::active_params_delta() const {
  double delta = 0;
  const double dense_ffn = 3.0 * static_cast<double>(model_.d_model * model_.d_ff);
  for (size_t i = 0; i < layers_.size() && i < stats_.size(); ++i) {
    const MoeLayer* l = layers_[i];
    const RouterStats& s = stats_[i];
    const double per_token = s.tokens ? static_cast<double>(s.choices) / s.tokens : 0.0;
    delta += per_token * static_cast<double>(l->params_per_expert()) +
             static_cast<double>(cfg_.num_experts * model_.d_model) - dense_ffn;
  }
  return delta;
}

}  // namespace sy
