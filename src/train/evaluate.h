#pragma once
// `switchyard eval`: a finished run's model on its data's val or test split.
#include <string>
#include <vector>

namespace sy {

// Loads <run>/config.yaml (plus overrides) and <run>/model.safetensors, evaluates
// the whole split, prints NLL / perplexity / per-word perplexity and writes
// <run>/eval_<split>.json. Returns the exit code.
int run_eval(const std::string& run_dir, const std::string& split,
             const std::vector<std::string>& overrides, int rank);

}  // namespace sy
