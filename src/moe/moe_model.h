#pragma once
// Puts MoE layers into a Transformer: a FfnFactory that makes every
// moe.every-th block's FFN a MoeLayer, and the list of those layers (for their
// statistics, auxiliary losses and FLOP accounting).
#include <vector>

#include "model/transformer.h"
#include "moe/moe_layer.h"
#include "parallel/communicator.h"

namespace sy {

class MoeModel {
 public:
  MoeModel(const ModelConfig& model, const MoeConfig& cfg, ExpertShard shard = {})
      : model_(model), cfg_(cfg), shard_(shard) {}
  // The factory outlives nothing: MoeModel must outlive the Transformer it builds.
  FfnFactory factory();

  MoeRuntime& runtime() { return runtime_; }
  const std::vector<MoeLayer*>& layers() const { return layers_; }
  // Keeps every layer's statistics of the last forward (call after a training
  // forward, so that evaluations do not overwrite what metrics report).
  void snapshot();
  // The end of a training step: each expert-choice layer's threshold samples are
  // summed over `world` (every rank's groups) and folded into θ once, so every
  // replica holds the same θ and the window does not depend on the layout.
  void end_step(Communicator& world);
  const std::vector<RouterStats>& snapshot_stats() const { return stats_; }
  // Σ over MoE layers of their weighted auxiliary losses (last forward).
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
