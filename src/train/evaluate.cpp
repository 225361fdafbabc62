#include "train/evaluate.h"

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "checkpoint/model_io.h"
#include "core/log.h"
#include "train/trainer.h"

namespace sy {

int run_eval(const std::string& run_dir, const std::string& split,
             const std::vector<std::string>& overrides, int rank) {
  Config cfg = load_config(run_dir + "/config.yaml", overrides);
  cfg.parallel.expert_parallel = 1;  // evaluation holds every expert, whatever the run's layout
  auto ops = make_ops(cfg.backend);
  Trainer trainer(cfg, *ops, split);
  load_params_from_run(run_dir, trainer.model().params());
  const EvalStats e = trainer.evaluate(/*max_batches=*/0);
  nlohmann::json j = {{"split", split},           {"nll", e.nll},   {"ppl", e.ppl},
                      {"targets", e.targets},     {"words", e.words}};
  if (e.word_ppl > 0) j["word_ppl"] = e.word_ppl;
  if (rank == 0) {
    std::ofstream(run_dir + "/eval_" + split + ".json") << j.dump(2) << "\n";
    std::printf("%s: nll %.4f, perplexity %.3f%s (%lld target tokens)\n", split.c_str(), e.nll,
                e.ppl,
                e.word_ppl > 0 ? fmt::format(", per-word perplexity {:.2f}", e.word_ppl).c_str() : "",
                static_cast<long long>(e.targets));
  }
  return 0;
}

}  // namespace sy
