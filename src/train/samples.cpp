#include "train/samples.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/log.h"
#include "infer/inference.h"

namespace sy {

TrainingSampler::TrainingSampler(const Config& cfg, Ops& ops, bool generate_here) : cfg_(cfg) {
  codec_ = TextCodec::for_data(cfg.data, cfg.model.vocab_size);
  for (const std::string& line : cfg.train.sample_prompts) {
    prompts_.push_back(line);
    std::vector<int32_t> ids = encode_prompt(*codec_, line, prompts_.size());
    if (static_cast<int64_t>(ids.size()) + cfg.train.sample_tokens > cfg.train.seq_len)
      throw Error(ExitCode::bad_input,
                  fmt::format("train.sample_prompts: prompt {} ('{}') is {} tokens; with train.sample_tokens {} it "
                              "exceeds the context (train.seq_len {}): shorten it or lower sample_tokens",
                              prompts_.size(), line, ids.size(), cfg.train.sample_tokens, cfg.train.seq_len));
    ids_.push_back(std::move(ids));
  }
  if (!generate_here) return;
  gen_ = std::make_unique<Generator>(cfg.model, cfg.moe, ops, static_cast<int64_t>(ids_.size()), cfg.train.seq_len,
                                     cfg.seed);
}

void TrainingSampler::sample(int64_t steps_done, const ParamStore& trained, const RouterState& router_state) {
  if (!gen_) return;
  ParamStore& mine = gen_->params();
  for (int i = 0; i < mine.size(); ++i) {
    const ParamId from = trained.find(mine.spec(i).name);
    SY_CHECK(from >= 0, "sampler: parameter '{}' is not in the trained model", mine.spec(i).name);
    mine.ops().copy(mine.value(i), trained.value(from));
  }
  gen_->set_router_state(router_state);
  if (!gen_->can_route_causally()) {
    log_warn("samples after step {}: skipped, the expert-choice thresholds are not estimated yet", steps_done);
    return;
  }
  SamplingOptions o;
  o.temperature = 0;  // greedy
  o.max_new_tokens = cfg_.train.sample_tokens;
  const std::vector<Generation> out = gen_->generate(ids_, o, codec_->eod_id());
  std::ofstream file(cfg_.run.dir + "/samples.jsonl", std::ios::app);
  for (size_t i = 0; i < out.size(); ++i) {
    std::vector<int32_t> ids;
    for (const GeneratedToken& t : out[i].tokens)
      if (t.id != codec_->eod_id()) ids.push_back(t.id);
    const std::string text = codec_->decode(ids);
    log_info("sample after step {}: {} → {}", steps_done, prompts_[i], text);
    file << nlohmann::json{{"steps_done", steps_done},
                           {"prompt", prompts_[i]},
                           {"completion", text},
                           {"tokens", out[i].tokens.size()},
                           {"stopped", out[i].stopped}}
                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
         << "\n";
  }
  if (!file.flush()) log_warn("samples: cannot append to '{}/samples.jsonl'", cfg_.run.dir);
}

}  // namespace sy
