#pragma once
// The training loop: data → forward → backward → clip → Adam(W), with evaluation,
// metrics.jsonl, a log and a progress line.
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "checkpoint/model_io.h"
#include "config/config.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "model/transformer.h"
#include "moe/moe_model.h"
#include "parallel/communicator.h"
#include "optim/adam.h"
#include <nlohmann/json.hpp>

#include "core/dir_lock.h"
#include "train/grad_sync.h"
#include "train/samples.h"
#include "train/trace.h"
#include "train/metrics.h"

namespace sy {

struct StepStats {
  double loss = 0;       // the objective: label-smoothed CE (mean over targets) + aux losses
  double aux = 0;        // the MoE layers' weighted auxiliary losses (included in loss)
  double nll = 0;        // unsmoothed, mean over target tokens
  int64_t targets = 0;   // tokens with a target
  double grad_norm = 0;  // before clipping
  double lr = 0;
  double seconds = 0;  // wall time of the step on this rank
  double grad_sync_seconds = 0;  // in gradient reductions, not hidden by compute (this rank)
  bool skipped = false;  // non-finite values: no update (train.skip_non_finite)
  ExchangeTotals exchange;  // this rank's
};

struct EvalStats {
  double nll = 0;  // mean over evaluated target tokens
  // Expert-choice decoders: perplexity under each evaluation rule (0: not measured).
  double ppl_groups = 0, ppl_threshold = 0;
  double ppl = 0;
  double word_ppl = 0;  // exp(Σ nll / words), 0 when the data has no word count
  int64_t targets = 0;
  double words = 0;     // words the evaluated targets stand for
  // MoE: per evaluation rule ("eval"; "groups" and "threshold" for expert choice in
  // a decoder), per layer.
  std::map<std::string, std::vector<EvalLayerRouting>> routing;
};

struct TrainResult {
  int exit_code = 0;  // 0, or 3 when stopped by SIGTERM / SIGINT after a checkpoint
  int64_t steps = 0;
  StepStats last;
  EvalStats eval;
  double tokens_per_s = 0;
};

class Trainer {
 public:
  // The process mesh (dp × ep) comes from the world this process runs in and
  // parallel.expert_parallel; rank 0 writes the run directory's files.
  // eval_split: the split evaluate() reads ("val", or "test" for prepared data).
  Trainer(const Config& cfg, Ops& ops, const std::string& eval_split = "val");
  // One optimizer step on batch `step` of the training stream.
  StepStats train_step(int64_t step);
  // Evaluates train.eval_batches batches of the evaluation split (0: all of it).
  EvalStats evaluate(int64_t max_batches = -1);
  // The whole run: writes config.yaml, metrics.jsonl and log.txt under cfg.run.dir.
  // resume: "" (a new run: run.dir must not hold another one), "auto" (the latest
  // checkpoint of run.dir, if any) or a checkpoint directory. fresh: start over in
  // a run.dir that holds a run, moving its files aside first.
  TrainResult run(const std::string& resume = "", bool fresh = false);
  // For reference implementations: the ids and targets of the first `n` batches of
  // the evaluation split (0: all of them), as safetensors tensors "ids" and
  // "targets", I32 [n, B, T]; with `gradients`, also "grad.<parameter>" (F32): the
  // gradient of the training objective (mean label-smoothed cross-entropy plus the
  // routers' auxiliary losses, training-mode routing at step 0) on the first batch.
  // Single process only.
  void save_eval_batches(const std::string& path, int64_t n, bool gradients);
  // Checkpointing (collective).
  std::string save_checkpoint_now(int64_t steps_done);
  int64_t restore_checkpoint(const std::string& dir);  // returns the step to continue from
  nlohmann::json fingerprint() const;
  // Training state saved with the weights (expert-choice thresholds), by name;
  // set_router_state returns how many MoE layers it set.
  RouterState router_state() const;
  int set_router_state(const RouterState& state);
  // Without trained thresholds, an expert-choice decoder is evaluated under the
  // group rule alone (the threshold rule would measure untrained thresholds).
  void set_threshold_rule_available(bool available) { threshold_rule_available_ = available; }
  // Record every evaluated token's routes into `trace` (null: stop).
  void set_trace(RoutingTrace* trace) { trace_ = trace; }
  // The evaluation rules evaluate() runs: {"eval"}, or {"groups", "threshold"}.
  std::vector<std::string> eval_rules() const;
  // Part-of-speech tags of the evaluation split's tokens, when the data has them.
  const TokenTags& eval_tags() const { return data_.eval_tags; }

  Transformer& model() { return *model_; }
  MoeModel* moe() { return moe_.get(); }
  const ProcessMesh& mesh() const { return mesh_; }
  GradSync& grad_sync() { return *grad_sync_; }
  const Config& config() const { return cfg_; }
  // Model FLOPs per training token (docs/design.md); MoE experts at the last forward's
  // mean experts per token.
  double flops_per_token() const;

 private:
  void log_step(int64_t step, const StepStats& s, double tokens_per_s, const EvalStats* eval);
  void set_route_context(int64_t step, bool training, int64_t first_row, double aux_grad_scale);
  // Adam's moments laid out like the parameters, in parameter order (with
  // parallel.zero 1 gathered from every rank's slices into `full`: collective).
  std::pair<Tensor, Tensor> full_moments(Buffer& m_full, Buffer& v_full);
  // The backward pass's report that parameters [first, end) have final gradients.
  void grads_ready(ParamId first, ParamId end);
  bool sync_in_backward_ = false, nan_in_backward_ = false;
  // Collective: every replica of every weight holds the same bits, or a fatal error.
  void check_replicas(int64_t step);
  // Bytes of optimizer state (Adam's two moments) this rank holds.
  double optimizer_bytes() const;
  void save_weights();
  void open_metrics(int64_t first_step);
  void claim_run_dir(bool resuming, bool fresh);
  EvalStats evaluate_once(int64_t n_batches);
  Config cfg_;
  Ops& ops_;
  ProcessMesh mesh_;
  int rank_;
  std::vector<Batch> micro_;  // this rank's micro-batches of the current step
  std::vector<double> count_, sums_;  // host scalars reduced over ranks (preallocated)
  int64_t skipped_steps_ = 0;
  std::string resumed_from_;
  Dataset data_;
  std::unique_ptr<MoeModel> moe_;  // before model_: its factory builds the model's MoE layers
  std::unique_ptr<Transformer> model_;
  std::unique_ptr<GradSync> grad_sync_;  // after model_: it holds the model's parameters
  std::unique_ptr<Adam> adam_;
  std::unique_ptr<Loader> train_data_, eval_data_;
  MetricsWriter metrics_;
  DirLock run_lock_;
  bool threshold_rule_available_ = true;
  RoutingTrace* trace_ = nullptr;
  std::unique_ptr<TrainingSampler> sampler_;  // train.sample_every
  std::string eval_rule_ = "eval";  // the rule evaluate_once() runs under
};

}  // namespace sy
