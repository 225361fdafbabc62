#pragma once
// Text generation with a KV cache: a decoder continues a batch of prompts one
// position at a time, every layer's keys and values kept, each new token routed
// alone and causally (RouteContext::inference: token choice keeps its top choices,
// expert choice uses its trained thresholds; docs/routing.md, "At inference").
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/model_io.h"
#include "model/transformer.h"
#include "moe/moe_model.h"

namespace sy {

struct SamplingOptions {
  int64_t max_new_tokens = 64;
  double temperature = 1.0;  // 0: greedy (the most likely token, the smaller id on ties)
  int64_t top_k = 0;         // 0: no limit
  double top_p = 1.0;        // nucleus: the smallest set of most likely tokens with mass ≥ p
  uint64_t seed = 1234;
};

// One (expert, gate) choice of a MoE layer for one token.
struct RoutedTo {
  int32_t expert;
  double gate;
};

struct GeneratedToken {
  int32_t id = 0;
  int64_t position = 0;
  std::vector<std::vector<RoutedTo>> experts;  // [MoE layer] the experts that took it
};

struct Generation {
  std::vector<int32_t> prompt;          // as fed (after any cut to the context)
  std::vector<GeneratedToken> tokens;   // the continuation
  std::vector<std::vector<std::vector<RoutedTo>>> prompt_experts;  // [position][layer]
  std::string stopped;                  // "eod", "max_new_tokens" or "context"
};

// Token choice from logits [V] (host), deterministic for (options, u): greedy at
// temperature 0 or top_k 1; else temperature, top-k, top-p, then the inverse CDF
// at u ∈ [0, 1) over tokens in descending probability (ties: smaller id first).
int32_t sample_token(const float* logits, int64_t V, const SamplingOptions& o, double u);

class Generator {
 public:
  // A decoder of `model` (with `moe`'s layers when enabled) for `batch` sequences of
  // up to `max_len` positions, on `ops`. Load weights into params(), thresholds
  // with set_router_state(), then generate().
  Generator(const ModelConfig& model, const MoeConfig& moe, Ops& ops, int64_t batch, int64_t max_len,
            uint64_t seed = 1234);
  ParamStore& params() { return model_->params(); }
  int set_router_state(const RouterState& state);
  // True when every MoE layer can route a new token (expert choice needs thresholds).
  bool can_route_causally() const;
  int moe_layers() const { return moe_ ? static_cast<int>(moe_->layers().size()) : 0; }
  std::vector<int> moe_layer_ids() const;

  // Continues each prompt (at most `batch` of them, each non-empty, ids < vocab)
  // until `eod` (if ≥ 0), max_new_tokens, or the end of the context.
  std::vector<Generation> generate(const std::vector<std::vector<int32_t>>& prompts,
                                   const SamplingOptions& o, int32_t eod);
  // The logits [V] after each position of one sequence, decoded position by
  // position (tests: against a full forward pass).
  std::vector<std::vector<float>> logits_along(const std::vector<int32_t>& ids);
  // One position of every row (benchmarks): feeds `id` at `position`, attending to
  // the cache below it as it stands, and brings the logits to the host.
  void decode_step(int32_t id, int64_t position);
  // The logits [V] of row 0 after the last decode_step.
  std::vector<float> last_logits() const { return {host_logits_.begin(), host_logits_.begin() + vocab_}; }

  int64_t batch() const { return batch_; }
  int64_t max_len() const { return max_len_; }

 private:
  std::vector<std::vector<RoutedTo>> routes_of(int64_t row) const;

  Ops& ops_;
  int64_t batch_, max_len_, vocab_;
  RouterKind router_;
  std::unique_ptr<MoeModel> moe_;  // before model_: its factory builds the MoE layers
  std::unique_ptr<Transformer> model_;
  std::vector<float> host_logits_;
};

}  // namespace sy
