#pragma once
// Puts MoE layers into a Transformer: a FfnFactory that makes every
// moe.every-th block's FFN a MoeLayer, and the list of those layers (for their
// statistics, auxiliary losses and FLOP accounting). It also owns the MoE side of a
// training step (the trainer calls these hooks and holds no MoE code): each
// micro-batch's routing context, expert-parallel traffic, the end-of-step
// threshold averaging, metrics, evaluation routing and the checkpointed state.
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/transformer.h"
#include "moe/moe_layer.h"
#include "parallel/communicator.h"

namespace sy {

// Expert-parallel traffic of one step, over every MoE layer and micro-batch.
struct ExchangeTotals {
  double bytes_sent = 0, bytes_received = 0, seconds = 0;
  double rows_received = 0;  // token rows this rank's experts processed (forward)
  void add(const ExchangeTotals& o) {
    bytes_sent += o.bytes_sent, bytes_received += o.bytes_received, seconds += o.seconds;
    rows_received += o.rows_received;
  }
};

// Routing of an evaluation, per MoE layer, summed over its batches (RouterStats).
struct EvalLayerRouting {
  int layer = 0;
  std::vector<int64_t> tokens_per_expert;
  int64_t histogram[5] = {0, 0, 0, 0, 0};  // experts per token: 0, 1, 2, 3, 4+
  int64_t tokens = 0, dropped = 0;
};

// Router state kept in checkpoints and weights (expert-choice thresholds), by
// tensor name (the checkpoint layer's RouterState).
using RouterTensors = std::map<std::string, std::vector<double>>;
// The name of layer `layer`'s expert-choice thresholds in that state.
inline std::string threshold_tensor_name(int layer) {
  return "blocks." + std::to_string(layer) + ".moe.router.thresholds";
}

class MoeModel {
 public:
  MoeModel(const ModelConfig& model, const MoeConfig& cfg, ExpertShard shard = {})
      : model_(model), cfg_(cfg), shard_(shard) {}
  // The factory outlives nothing: MoeModel must outlive the Transformer it builds.
  FfnFactory factory();

  MoeRuntime& runtime() { return runtime_; }
  const std::vector<MoeLayer*>& layers() const { return layers_; }

  // ---- the training step's hooks ---------------------------------------------------
  // Before each micro-batch's forward: where and when it is (the random draws'
  // keys); aux_grad_scale weights the auxiliary losses' gradients.
  void begin_micro_batch(const RouteContext& ctx, double aux_grad_scale) {
    runtime_.ctx = ctx;
    runtime_.aux_grad_scale = aux_grad_scale;
  }
  // Traffic of the last forward + backward, summed over the layers.
  ExchangeTotals exchange() const;
  // After the step's last backward: keeps the statistics metrics() reports and folds
  // the thresholds (end_step).
  void finish_step(Communicator& world) {
    snapshot();
    end_step(world);
  }
  // metrics.jsonl's "moe" entry: per layer, the routing of the last finished step.
  nlohmann::json metrics() const;
  // Evaluation: the rule expert choice evaluates by; per-layer counts of the last
  // forward, added into rows (routing_width() values per layer), and those rows
  // (summed over batches and ranks) as EvalLayerRouting.
  void set_eval_routing(EvalRouting r);
  // Expert choice in a decoder evaluates under both rules (groups, which see the
  // group's later tokens, and the causal thresholds): their gap is the peeking.
  bool has_two_eval_rules() const {
    return cfg_.router == RouterKind::expert_choice && model_.arch == Arch::decoder;
  }
  // The run log's lines about the MoE layers (and a warning where routing peeks).
  void log_setup(int expert_parallel) const;
  int64_t routing_width() const { return cfg_.num_experts + 7; }
  void add_routing_counts(std::vector<double>& rows) const;
  std::vector<EvalLayerRouting> routing_from_counts(const std::vector<double>& rows) const;
  // The state that checkpoints and weight files keep (expert-choice thresholds);
  // set_router_state returns how many layers it found theirs in.
  RouterTensors router_state() const;
  int set_router_state(const RouterTensors& state);
  // Keeps every layer's statistics of the last forward (call after a training
  // forward, so that evaluations do not overwrite what metrics report).
  void snapshot();
  // The end of a training step: each expert-choice layer's threshold samples are
  // summed over `world` (every rank's groups) and folded into θ once, so every
  // replica holds the same θ and the window does not depend on the layout.
  void end_step(Communicator& world);
  const std::vector<RouterStats>& snapshot_stats() const { return stats_; }
  // Σ over MoE layers of their weighted auxiliary losses (last forward).
  // Device → host reads inside the MoE layers so far (the step breakdown reports
  // them per step).
  uint64_t host_reads() const;
  double aux_loss() const;
  // Weight elements a token meets in the MoE blocks at the snapshot's mean experts
  // per token (router + experts), minus what dense FFNs there would have had.
  double active_params_delta() const;

 private:
  ModelConfig model_;
  MoeConfig cfg_;
  ExpertShard shard_;
  MoeRuntime runtime_;
  std::vector<MoeLayer*> layers_;
  std::vector<RouterStats> stats_;
};

}  // namespace sy
