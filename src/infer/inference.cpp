#include "infer/inference.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "checkpoint/model_io.h"
#include "config/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "data/text_codec.h"

namespace sy {
namespace {

void check_sampling(const SamplingOptions& s) {
  if (!(s.temperature >= 0) || !std::isfinite(s.temperature))
    throw Error(ExitCode::bad_input, fmt::format("--temperature {}: must be ≥ 0 (0: greedy)", s.temperature));
  if (!(s.top_p > 0 && s.top_p <= 1))
    throw Error(ExitCode::bad_input, fmt::format("--top-p {}: must be in (0, 1] (1: no nucleus cut)", s.top_p));
  if (s.top_k < 0) throw Error(ExitCode::bad_input, fmt::format("--top-k {}: must be ≥ 0 (0: no limit)", s.top_k));
  if (s.max_new_tokens < 0)
    throw Error(ExitCode::bad_input, fmt::format("--max-new-tokens {}: must be ≥ 0", s.max_new_tokens));
}

// The run's config, with the weights' source checked before anything is built.
Config load_run_config(const std::string& run, const std::string& checkpoint,
                       const std::vector<std::string>& overrides) {
  namespace fs = std::filesystem;
  if (run.empty() || !fs::is_directory(run))
    throw Error(ExitCode::bad_input, "--run '" + run + "' is not a directory");
  if (!fs::exists(run + "/config.yaml"))
    throw Error(ExitCode::bad_input, "'" + run + "' holds no config.yaml: not a run directory");
  Config cfg = load_config(run + "/config.yaml", overrides);
  if (checkpoint.empty()) {
    if (!fs::exists(run + "/model.safetensors") && !fs::exists(run + "/model.safetensors.index.json"))
      throw Error(ExitCode::bad_input,
                  "'" + run + "' has no final weights (the run has not finished?); use one of its checkpoints: "
                  "--checkpoint " + run + "/checkpoints/step_NNNNNNN");
    return cfg;
  }
  if (!fs::is_directory(checkpoint))
    throw Error(ExitCode::bad_input, "--checkpoint '" + checkpoint + "' is not a directory");
  const CheckpointState st = read_checkpoint_state(checkpoint);
  const std::vector<std::string> changed = resume_changes(st.config_yaml, cfg);
  if (!changed.empty()) {
    std::string msg = "--checkpoint '" + checkpoint + "' belongs to another model than '" + run + "':";
    for (const std::string& c : changed) msg += "\n  " + c;
    throw Error(ExitCode::bad_input, msg);
  }
  return cfg;
}

// Weights (and the router state beside them) into `params`.
RouterState load_weights(const std::string& run, const std::string& checkpoint, ParamStore& params) {
  if (checkpoint.empty()) return load_params_from_run(run, params);
  load_checkpoint_tensors(checkpoint, params, Tensor{}, Tensor{});
  return read_checkpoint_state(checkpoint).router_state;
}

nlohmann::json routes_json(const std::vector<std::vector<RoutedTo>>& layers, const std::vector<int>& ids) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t l = 0; l < layers.size(); ++l) {
    nlohmann::json a = nlohmann::json::array();
    for (const RoutedTo& r : layers[l]) a.push_back({r.expert, r.gate});
    j[std::to_string(ids[l])] = a;
  }
  return j;
}

}  // namespace

std::vector<int32_t> encode_prompt(const TextCodec& codec, const std::string& text, size_t n) {
  if (text.empty()) throw Error(ExitCode::bad_input, fmt::format("prompt {} is empty", n));
  std::vector<int32_t> ids = codec.encode(text);
  // Unknown characters become the unknown piece; what is left must say something
  // (not only the word-boundary piece a tokenizer puts before them).
  const int32_t unk = codec.unknown_id();
  int64_t unknown = 0;
  std::vector<int32_t> known;
  for (int32_t id : ids) {
    if (id == unk) ++unknown;
    else known.push_back(id);
  }
  const std::string rest = codec.decode(known);
  if (ids.empty() || rest.find_first_not_of(" \t\n\r") == std::string::npos)
    throw Error(ExitCode::bad_input, fmt::format("prompt {} ('{}'): none of its characters is in the tokenizer's "
                                                 "vocabulary ({})", n, text, codec.describe()));
  if (unknown > 0) log_warn("prompt {}: {} of its {} pieces are unknown to the tokenizer", n, unknown, ids.size());
  return ids;
}

std::vector<std::string> read_prompt_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ExitCode::bad_input, "--prompt-file '" + path + "' cannot be read");
  std::vector<std::string> lines;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty())
      throw Error(ExitCode::bad_input, fmt::format("{}:{}: an empty prompt (one prompt per line)", path, n));
    lines.push_back(line);
  }
  if (lines.empty()) throw Error(ExitCode::bad_input, "--prompt-file '" + path + "' holds no prompt");
  return lines;
}

int run_generate(const GenerateOptions& o) {
  check_sampling(o.sampling);
  if (o.prompts.empty()) throw Error(ExitCode::bad_input, "generate needs --prompt TEXT or --prompt-file FILE");
  Config cfg = load_run_config(o.run, o.checkpoint, o.overrides);
  if (cfg.model.arch != Arch::decoder)
    throw Error(ExitCode::bad_input, "'" + o.run + "' is an encoder (model.arch: encoder): it does not continue "
                                     "text; predict masked positions with switchyard fill-mask --run " + o.run +
                                     " --text '... <mask> ...'");
  const std::unique_ptr<TextCodec> codec = TextCodec::for_data(cfg.data, cfg.model.vocab_size);
  std::vector<std::vector<int32_t>> prompts;
  const int64_t context = cfg.model.max_seq;
  for (size_t i = 0; i < o.prompts.size(); ++i) {
    std::vector<int32_t> ids = encode_prompt(*codec, o.prompts[i], i + 1);
    // The context holds model.max_seq positions: a longer prompt keeps its last
    // max_seq − 1 tokens (room for one new token).
    if (static_cast<int64_t>(ids.size()) > context - 1) {
      log_warn("prompt {}: {} tokens; the model's context is {} positions: keeping its last {}", i + 1, ids.size(),
               context, context - 1);
      ids.erase(ids.begin(), ids.end() - (context - 1));
    }
    prompts.push_back(std::move(ids));
  }
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  const int64_t max_len = std::min(context, longest + o.sampling.max_new_tokens);
  if (longest + o.sampling.max_new_tokens > context)
    log_warn("--max-new-tokens {}: the context ({} positions) ends generation earlier for the longest prompt",
             o.sampling.max_new_tokens, context);
  auto ops = make_ops(cfg.backend);
  ops->set_bf16_operands(cfg.precision == Precision::bf16);
  Generator gen(cfg.model, cfg.moe, *ops, static_cast<int64_t>(prompts.size()), std::max<int64_t>(max_len, 1),
                o.sampling.seed);
  gen.set_router_state(load_weights(o.run, o.checkpoint, gen.params()));
  if (!gen.can_route_causally())
    throw Error(ExitCode::bad_input, "this expert-choice model has no trained thresholds (a run of an older "
                                     "version): a new token cannot be routed causally without them");
  if (cfg.moe.enabled() && cfg.moe.router == RouterKind::expert_choice)
    log_info("expert choice at inference: each new token goes to expert e iff p[e] ≥ θ_e (the trained threshold), "
             "the causal form of the rule; training routed groups of tokens, so the number of experts per token "
             "can differ from training's");
  const std::vector<Generation> out = gen.generate(prompts, o.sampling, codec->eod_id());
  const std::vector<int> layer_ids = gen.moe_layer_ids();
  for (size_t i = 0; i < out.size(); ++i) {
    const Generation& g = out[i];
    std::vector<int32_t> ids;
    double experts = 0;
    int64_t routed = 0;
    for (const GeneratedToken& t : g.tokens) {
      if (t.id != codec->eod_id()) ids.push_back(t.id);
      for (const auto& l : t.experts) experts += static_cast<double>(l.size());
      routed += t.experts.empty() ? 0 : 1;
    }
    const double per_token = routed && !layer_ids.empty() ? experts / (routed * layer_ids.size()) : 0;
    const std::string completion = codec->decode(ids);
    if (o.json) {
      nlohmann::json j = {{"prompt", o.prompts[i]},  {"completion", completion}, {"stopped", g.stopped},
                          {"prompt_tokens", g.prompt.size()}, {"new_tokens", g.tokens.size()}};
      nlohmann::json toks = nlohmann::json::array();
      for (const GeneratedToken& t : g.tokens) {
        nlohmann::json tj = {{"id", t.id}, {"piece", codec->piece(t.id)}, {"position", t.position}};
        if (!layer_ids.empty()) tj["experts"] = routes_json(t.experts, layer_ids);
        toks.push_back(tj);
      }
      j["tokens"] = toks;
      if (!layer_ids.empty()) {
        j["mean_experts_per_token"] = per_token;
        j["routing"] = cfg.moe.router == RouterKind::expert_choice ? "expert_choice thresholds (causal)"
                                                                   : std::string(router_name(cfg.moe.router)) +
                                                                         " per token";
      }
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("%s%s\n", o.prompts[i].c_str(), completion.c_str());
      std::string note = fmt::format("[{} new tokens, stopped: {}", g.tokens.size(), g.stopped);
      if (!layer_ids.empty()) note += fmt::format("; {:.2f} experts per generated token", per_token);
      std::printf("%s]\n", note.c_str());
    }
  }
  std::fflush(stdout);
  return 0;
}

int run_fill_mask(const FillMaskOptions& o) {
  if (o.top < 1) throw Error(ExitCode::bad_input, fmt::format("--top {}: must be ≥ 1", o.top));
  Config cfg = load_run_config(o.run, o.checkpoint, o.overrides);
  if (cfg.model.arch != Arch::encoder)
    throw Error(ExitCode::bad_input, "'" + o.run + "' is a decoder: fill-mask is for encoders; continue text with "
                                     "switchyard generate --run " + o.run + " --prompt '...'");
  const std::unique_ptr<TextCodec> codec = TextCodec::for_data(cfg.data, cfg.model.vocab_size);
  if (codec->mask_id() < 0) throw Error(ExitCode::bad_input, "the run's tokenizer has no <mask> piece");
  // "<mask>" markers become the mask id; the text between them is encoded as is.
  const std::string marker = "<mask>";
  std::vector<int32_t> ids;
  std::vector<int64_t> masked;
  size_t at = 0;
  for (;;) {
    const size_t m = o.text.find(marker, at);
    const std::string part = o.text.substr(at, m == std::string::npos ? std::string::npos : m - at);
    if (!part.empty()) {
      const std::vector<int32_t> p = codec->encode(part);
      ids.insert(ids.end(), p.begin(), p.end());
    }
    if (m == std::string::npos) break;
    masked.push_back(static_cast<int64_t>(ids.size()));
    ids.push_back(codec->mask_id());
    at = m + marker.size();
  }
  if (masked.empty()) throw Error(ExitCode::bad_input, "--text holds no <mask> to fill");
  const int64_t T = static_cast<int64_t>(ids.size());
  if (T > cfg.model.max_seq)
    throw Error(ExitCode::bad_input, fmt::format("--text is {} tokens; the model reads at most {} (model.max_seq)", T,
                                                 cfg.model.max_seq));
  auto ops = make_ops(cfg.backend);
  ops->set_bf16_operands(cfg.precision == Precision::bf16);
  std::unique_ptr<MoeModel> moe;
  if (cfg.moe.enabled()) moe = std::make_unique<MoeModel>(cfg.model, cfg.moe);
  Transformer model(*ops, cfg.model, 0.0, DType::f32, moe ? moe->factory() : FfnFactory{});
  model.set_fused_attention(cfg.attention_kernel == AttentionKernel::fused);
  model.allocate(1, T);
  const RouterState state = load_weights(o.run, o.checkpoint, model.params());
  (void)state;  // (encoders route by groups in evaluation; no thresholds needed)
  if (moe) {
    RouteContext& c = moe->runtime().ctx;
    c = RouteContext{};
    c.training = false;
    c.batch = 1;
    c.seq = T;
  }
  const std::vector<int32_t> targets(static_cast<size_t>(T), -1);
  model.forward(ids.data(), targets.data());
  const int64_t V = cfg.model.vocab_size;
  std::vector<float> logits(static_cast<size_t>(T * V));
  ops->to_host(logits.data(), model.logits());
  nlohmann::json all = nlohmann::json::array();
  for (int64_t pos : masked) {
    const float* z = logits.data() + pos * V;
    double mx = z[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max<double>(mx, z[v]);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(z[v] - mx);
    std::vector<int32_t> order(static_cast<size_t>(V));
    for (int64_t v = 0; v < V; ++v) order[v] = static_cast<int32_t>(v);
    const int64_t k = std::min(o.top, V);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
    nlohmann::json cands = nlohmann::json::array();
    for (int64_t i = 0; i < k; ++i)
      cands.push_back({{"id", order[i]}, {"piece", codec->piece(order[i])}, {"p", std::exp(z[order[i]] - mx) / sum}});
    all.push_back({{"position", pos}, {"candidates", cands}});
    if (!o.json) {
      std::printf("<mask> at %lld:", static_cast<long long>(pos));
      for (const auto& c : cands)
        std::printf("  %s (%.3f)", c["piece"].get<std::string>().c_str(), c["p"].get<double>());
      std::printf("\n");
    }
  }
  if (o.json) std::printf("%s\n", nlohmann::json({{"text", o.text}, {"masks", all}}).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace sy
