#include "train/evaluate.h"

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "checkpoint/model_io.h"
#include "core/errors.h"
#include "core/log.h"
#include "data/text_codec.h"
#include "train/trace.h"
#include "train/trainer.h"

namespace sy {

int run_eval(const std::string& run_dir, const std::string& split,
             const std::vector<std::string>& overrides, int rank, const EvalOptions& opt) {
  Config cfg = load_config(run_dir + "/config.yaml", overrides);
  cfg.parallel.expert_parallel = 1;  // evaluation holds every expert, whatever the run's layout
  auto ops = make_ops(cfg.backend);
  Trainer trainer(cfg, *ops, split);
  // Weights checked against weights.json and for non-finite values (exit 5), with
  // the router state trained beside them (expert-choice thresholds).
  const RouterState state = load_params_from_run(run_dir, trainer.model().params());
  const int layers_set = trainer.set_router_state(state);
  if (cfg.moe.enabled() && cfg.moe.router == RouterKind::expert_choice && layers_set == 0) {
    if (cfg.moe.eval_routing == EvalRouting::threshold)
      throw Error(ExitCode::bad_input,
                  "moe.expert_choice.eval_routing = threshold needs the thresholds trained with the "
                  "weights, and '" + run_dir + "' holds none (a run of an older version); evaluate "
                  "with --set moe.expert_choice.eval_routing=groups");
    trainer.set_threshold_rule_available(false);
    log_warn("'{}' holds no trained expert-choice thresholds: evaluating with the group rule only",
             run_dir);
  }
  std::unique_ptr<RoutingTrace> trace;
  if (!opt.trace.empty()) {
    if (!trainer.moe())
      throw Error(ExitCode::bad_input, "--trace: '" + run_dir + "' is a dense model: there is no routing to trace");
    if (trainer.mesh().world > 1)
      throw Error(ExitCode::bad_input, "--trace runs on one process (not under mpirun)");
    std::vector<int> layers;
    for (const MoeLayer* l : trainer.moe()->layers()) layers.push_back(l->layer());
    trace = std::make_unique<RoutingTrace>(layers, cfg.moe.num_experts, router_name(cfg.moe.router),
                                           trainer.eval_rules());
    trainer.set_trace(trace.get());
  }
  const EvalStats e = trainer.evaluate(/*max_batches=*/0);
  trainer.set_trace(nullptr);
  nlohmann::json j = {{"split", split},           {"nll", e.nll},   {"ppl", e.ppl},
                      {"targets", e.targets},     {"words", e.words}};
  if (e.ppl_groups > 0) {
    j["ppl_groups"] = e.ppl_groups;
    j["ppl_threshold"] = e.ppl_threshold;
  }
  if (e.word_ppl > 0) j["word_ppl"] = e.word_ppl;
  for (const auto& [rule, layers] : e.routing)
    for (const EvalLayerRouting& r : layers)
      j["moe"].push_back({{"rule", rule},
                          {"layer", r.layer},
                          {"tokens", r.tokens},
                          {"tokens_per_expert", r.tokens_per_expert},
                          {"experts_per_token", {r.histogram[0], r.histogram[1], r.histogram[2], r.histogram[3],
                                                 r.histogram[4]}},
                          {"dropped", r.dropped}});
  if (rank == 0) {
    std::ofstream(run_dir + "/eval_" + split + ".json") << j.dump(2) << "\n";
    std::printf("%s: nll %.4f, perplexity %.3f%s (%lld target tokens)\n", split.c_str(), e.nll,
                e.ppl,
                e.word_ppl > 0 ? fmt::format(", per-word perplexity {:.2f}", e.word_ppl).c_str() : "",
                static_cast<long long>(e.targets));
  }
  if (trace) {
    std::unique_ptr<TextCodec> codec;
    if (cfg.data.source != DataSource::synthetic) codec = TextCodec::for_data(cfg.data, cfg.model.vocab_size);
    const TokenTags tags = trainer.eval_tags();
    trace->write(opt.trace, {{"run", run_dir}, {"split", split}}, codec.get(), tags.names, tags.of_token);
    if (rank == 0) std::printf("routing trace of %lld tokens in %s\n", static_cast<long long>(trace->tokens()),
                               opt.trace.c_str());
  }
  if (!opt.save_batches.empty()) {
    if (trainer.mesh().world > 1)
      throw Error(ExitCode::bad_input, "--save-batches runs on one process (not under mpirun)");
    trainer.save_eval_batches(opt.save_batches, 0, opt.gradients);
    if (rank == 0) std::printf("batches%s in %s\n", opt.gradients ? " and gradients" : "", opt.save_batches.c_str());
  }
  return 0;
}

}  // namespace sy
