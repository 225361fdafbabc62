#include "moe/moe_model.h"

#include <algorithm>

#include "core/log.h"
#include "moe/router_table.h"

namespace sy {

ExchangeTotals MoeModel::exchange() const {
  ExchangeTotals t;
  for (const MoeLayer* l : layers_) {
    const auto& x = l->exchange();
    t.add({static_cast<double>(x.bytes_sent), static_cast<double>(x.bytes_received), x.seconds,
           static_cast<double>(x.rows_received)});
  }
  return t;
}

nlohmann::json MoeModel::metrics() const {
  nlohmann::json layers = nlohmann::json::array();
  for (size_t li = 0; li < stats_.size() && li < layers_.size(); ++li) {
    const RouterStats& r = stats_[li];
    int64_t max_load = 0;
    for (int64_t n : r.tokens_per_expert) max_load = std::max(max_load, n);
    const double mean_load = static_cast<double>(r.choices) / std::max<size_t>(r.tokens_per_expert.size(), 1);
    nlohmann::json m = {{"layer", layers_[li]->layer()},
                        {"tokens_per_expert", r.tokens_per_expert},
                        {"max_over_mean_load", mean_load > 0 ? max_load / mean_load : 0.0},
                        {"dropped_fraction", r.choices + r.dropped > 0
                                                 ? static_cast<double>(r.dropped) / (r.choices + r.dropped)
                                                 : 0.0},
                        {"experts_per_token", {r.histogram[0], r.histogram[1], r.histogram[2],
                                               r.histogram[3], r.histogram[4]}},
                        {"mean_experts_per_token", r.tokens ? static_cast<double>(r.choices) / r.tokens : 0.0},
                        {"router_entropy", r.entropy},
                        {"mean_gate", r.mean_gate},
                        {"z_loss", r.z},
                        {"aux_weighted", r.aux_weighted}};
    if (r.balance > 0) m["balance_loss"] = r.balance;
    for (const auto& [name, value] : router_info(cfg_.router).extra_metrics(r)) m[name] = value;
    if (r.empty_slots > 0) m["empty_slots"] = r.empty_slots;
    layers.push_back(m);
  }
  return layers;
}

void MoeModel::log_setup(int expert_parallel) const {
  std::vector<int> blocks;
  for (const MoeLayer* l : layers_) blocks.push_back(l->layer());
  log_info("moe: {} router, {} experts ({} on this rank) in blocks {}", router_name(cfg_.router), cfg_.num_experts,
           cfg_.num_experts / std::max(expert_parallel, 1), fmt::join(blocks, ","));
  if (has_two_eval_rules() && cfg_.ec_grouping == EcGrouping::contiguous)
    log_warn("moe: expert choice with contiguous groups in a decoder: routing sees future tokens "
             "(the paper's setting); compare val_ppl_groups with the causal val_ppl_threshold");
}

void MoeModel::set_eval_routing(EvalRouting r) {
  for (MoeLayer* l : layers_) l->router().set_eval_routing(r);
}

// Per layer: [E tokens per expert, 5 histogram bins, tokens, dropped].
void MoeModel::add_routing_counts(std::vector<double>& rows) const {
  const int64_t E = cfg_.num_experts, width = routing_width();
  rows.resize(layers_.size() * static_cast<size_t>(width), 0.0);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const RouterStats& r = layers_[l]->router().stats();
    double* row = rows.data() + l * width;
    for (int64_t e = 0; e < E && e < static_cast<int64_t>(r.tokens_per_expert.size()); ++e)
      row[e] += static_cast<double>(r.tokens_per_expert[e]);
    for (int h = 0; h < 5; ++h) row[E + h] += static_cast<double>(r.histogram[h]);
    row[E + 5] += static_cast<double>(r.tokens);
    row[E + 6] += static_cast<double>(r.dropped);
  }
}

std::vector<EvalLayerRouting> MoeModel::routing_from_counts(const std::vector<double>& rows) const {
  const int64_t E = cfg_.num_experts, width = routing_width();
  std::vector<EvalLayerRouting> out;
  for (size_t l = 0; l < layers_.size() && (l + 1) * width <= rows.size(); ++l) {
    const double* row = rows.data() + l * width;
    EvalLayerRouting r;
    r.layer = layers_[l]->layer();
    for (int64_t x = 0; x < E; ++x) r.tokens_per_expert.push_back(static_cast<int64_t>(row[x]));
    for (int h = 0; h < 5; ++h) r.histogram[h] = static_cast<int64_t>(row[E + h]);
    r.tokens = static_cast<int64_t>(row[E + 5]);
    r.dropped = static_cast<int64_t>(row[E + 6]);
    out.push_back(r);
  }
  return out;
}

RouterTensors MoeModel::router_state() const {
  RouterTensors state;
  for (const MoeLayer* l : layers_)
    if (!l->router().thresholds().empty())
      state[threshold_tensor_name(l->layer())] = l->router().thresholds();
  return state;
}

int MoeModel::set_router_state(const RouterTensors& state) {
  int set = 0;
  for (MoeLayer* l : layers_) {
    auto it = state.find(threshold_tensor_name(l->layer()));
    if (it == state.end()) continue;
    l->router().set_thresholds(it->second);
    ++set;
  }
  return set;
}

FfnFactory MoeModel::factory() {
  return [this](LayerEnv env, const std::string& prefix, int layer) -> std::unique_ptr<FeedForward> {
    if (!cfg_.is_moe_block(layer)) return nullptr;
    auto moe = std::make_unique<MoeLayer>(env, prefix + ".moe", model_, cfg_, layer, runtime_, shard_);
    layers_.push_back(moe.get());
    return moe;
  };
}

uint64_t MoeModel::host_reads() const {
  uint64_t n = 0;
  for (const MoeLayer* l : layers_) n += l->host_reads();
  return n;
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
