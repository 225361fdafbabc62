#pragma once
// The whole configuration of a run: typed sections, each validated where it is
// defined (model/, optim/, data/), bound from strict YAML here.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/problems.h"
#include "data/data_config.h"
#include "model/model_config.h"
#include "moe/moe_config.h"
#include "optim/optim_config.h"

namespace sy {

struct RunConfig {
  std::string dir = "runs/default";
  int64_t log_every = 10;   // steps between metrics lines
  bool progress = true;     // a live progress line on the console
};

struct TrainConfig {
  int64_t steps = 1000;
  int64_t batch_size = 8;   // sequences per micro-batch
  int64_t seq_len = 256;
  double label_smoothing = 0.0;
  int64_t eval_every = 100;  // 0: only at the end
  int64_t eval_batches = 8;  // 0: the whole evaluation split
  int64_t grad_accum = 1;    // micro-batches per rank per optimizer step
  bool skip_non_finite = false;  // a NaN/Inf loss or gradient: skip the step (else abort, exit 4)
  // Decoders: every sample_every steps (0: never) and at the end, rank 0 continues
  // each of sample_prompts greedily by sample_tokens tokens, prints it and appends
  // it to <run>/samples.jsonl.
  int64_t sample_every = 0;
  std::vector<std::string> sample_prompts;
  int64_t sample_tokens = 32;
  // The classifier (output projection, softmax, cross-entropy and their
  // gradients) this many token rows at a time: the [tokens, vocab] logits never
  // exist at once (0: all rows at once). The backward pass recomputes each chunk.
  int64_t logits_chunk_rows = 0;
};

struct CheckpointConfig {
  int64_t every = 0;      // steps between checkpoints; 0: only at the end and on SIGTERM/SIGINT
  int64_t keep_last = 3;  // committed checkpoints kept (the newest and the resumed one always)
};

struct ParallelConfig {
  int64_t expert_parallel = 1;  // ep: ranks that share one copy of the experts
  // A phase (start-up, a restore, a step with its checkpoint, the final save,
  // finalisation) longer than this ends the job (exit 6). 0, .inf or more than
  // 1e8 s: no limit.
  double step_timeout_s = 900;
  // Gradients are reduced in buckets of about this many megabytes (10^6 bytes),
  // each started as soon as the backward pass has finished it.
  double bucket_mb = 25;
  // 0: every rank keeps Adam's moments for every parameter it holds; 1 (ZeRO stage
  // 1): each rank keeps them for its slice only (1/world of the dense parameters,
  // 1/dp of its experts), gradients are reduce-scattered and parameters all-gathered.
  int64_t zero = 0;
  // Every this many steps, check that every replica of every weight holds the same
  // bits (dense weights over the world, experts over their data-parallel group);
  // a difference (a bug, or silent data corruption) ends the run (exit 1). 0: never.
  // (It copies the weights to the host and hashes them: about a second per GB.)
  int64_t check_replicas_every = 1000;
};

enum class Precision { fp32, bf16 };
enum class AttentionKernel { reference, fused };

struct Config {
  uint64_t seed = 1234;
  Device backend = Device::cpu;
  int64_t threads = 0;  // 0: every core (OMP_NUM_THREADS if set)
  // fp32, or bf16: matrix-product operands rounded to bf16 with fp32 accumulation,
  // fp32 master weights, norms, softmax, loss and router (Ops::set_bf16_operands).
  Precision precision = Precision::fp32;
  // reference: attention as batched matrix products over the [T, T] probabilities,
  // kept for the backward; fused: flash-style tiles with an online softmax, only
  // each row's log-sum-exp kept (Ops::attention_fused_forward). The same function;
  // fused saves B·NH·T² values per layer, and is the GPU's fast path (on the CPU it
  // is plain loops: slower than the BLAS products).
  AttentionKernel attention_kernel = AttentionKernel::reference;
  RunConfig run;
  ModelConfig model;
  MoeConfig moe;
  OptimConfig optim;
  DataConfig data;
  PrepareConfig prepare;
  TrainConfig train;
  ParallelConfig parallel;
  CheckpointConfig checkpoint;

  // Cross-section rules, then each section's own.
  void validate(Problems& p) const;
};

// Reads `path`, applies `overrides` ("a.b=value", as from --set), binds strictly
// (unknown keys and wrong types are errors) and validates. Throws Error
// (exit code 2) listing every problem, each with its key, value, rule and where
// it was written (file:line, or the --set that gave it).
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text (`origin` names it in messages).
Config parse_config(const std::string& yaml_text, const std::string& origin,
                    const std::vector<std::string>& overrides = {});
// The fully resolved config as YAML (every key, defaults included).
std::string to_yaml(const Config& c);

// Every key of the schema with its value as text ("model.d_model" → "128").
std::map<std::string, std::string> config_values(const Config& c);
// The keys a resume must not change: they define the model's function and its
// parameters, the data and its order (model.*, the experts' structure, the data
// source and split, seed). Optimiser, schedule, routing and evaluation settings,
// logging, checkpointing, backend and layout may change.
bool fixed_across_resume(const std::string& key);
// "key: old → new" for every fixed key whose value differs between the config a
// checkpoint saved (resolved YAML) and `now`. A saved config that no longer parses
// (an older version's) is compared on the keys it still has.
std::vector<std::string> resume_changes(const std::string& saved_yaml, const Config& now);

}  // namespace sy
