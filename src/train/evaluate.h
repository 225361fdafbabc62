#pragma once
// `switchyard eval`: a finished run's model on its data's val or test split.
#include <string>
#include <vector>

namespace sy {

struct EvalOptions {
  std::string save_batches;  // also write the evaluated batches here (reference implementations)
  bool gradients = false;    // with save_batches: the gradients of the first batch too
  std::string trace;         // write the routing trace here (MoE runs, one process)
};

// Loads <run>/config.yaml (plus overrides) and <run>/model.safetensors, evaluates
// the whole split, prints NLL / perplexity / per-word perplexity and writes
// <run>/eval_<split>.json. Returns the exit code.
int run_eval(const std::string& run_dir, const std::string& split,
             const std::vector<std::string>& overrides, int rank, const EvalOptions& opt = {});

}  // namespace sy
