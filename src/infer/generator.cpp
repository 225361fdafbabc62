#include "infer/generator.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/errors.h"
#include "core/rng.h"

namespace sy {

int32_t sample_token(const float* logits, int64_t V, const SamplingOptions& o, double u) {
  // Tokens by descending logit (ties: smaller id first); greedy is the first.
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  const int64_t keep = o.top_k > 0 ? std::min(o.top_k, V) : V;
  auto before = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (o.temperature <= 0 || keep == 1) {
    return *std::min_element(order.begin(), order.end(), before);
  }
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), before);
  order.resize(static_cast<size_t>(keep));
  // Softmax at the temperature over the kept tokens, in double.
  std::vector<double> p(order.size());
  const double top = logits[order[0]];
  double sum = 0;
  for (size_t i = 0; i < order.size(); ++i) sum += p[i] = std::exp((logits[order[i]] - top) / o.temperature);
  for (double& x : p) x /= sum;
  // Nucleus: the shortest prefix with mass ≥ top_p.
  if (o.top_p < 1.0) {
    double mass = 0;
    size_t n = 0;
    while (n < p.size() && mass < o.top_p) mass += p[n++];
    p.resize(std::max<size_t>(n, 1));
    order.resize(p.size());
    sum = std::accumulate(p.begin(), p.end(), 0.0);
    for (double& x : p) x /= sum;
  }
  double c = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    c += p[i];
    if (u < c) return order[i];
  }
  return order.back();  // (u within rounding of 1)
}

Generator::Generator(const ModelConfig& model, const MoeConfig& moe, Ops& ops, int64_t batch, int64_t max_len,
                     uint64_t seed)
    : ops_(ops), batch_(batch), max_len_(max_len), vocab_(model.vocab_size), router_(moe.router) {
  if (model.arch != Arch::decoder)
    throw Error(ExitCode::bad_input, "an encoder (model.arch: encoder) does not continue text: it fills masked "
                                     "positions instead (switchyard fill-mask)");
  if (moe.enabled()) moe_ = std::make_unique<MoeModel>(model, moe);
  model_ = std::make_unique<Transformer>(ops, model, /*label_smoothing=*/0.0, DType::f32,
                                         moe_ ? moe_->factory() : FfnFactory{});
  model_->allocate_decoding(batch, max_len);
  if (moe_) {
    RouteContext& c = moe_->runtime().ctx;
    c = RouteContext{};
    c.seed = seed;
    c.training = false;
    c.inference = true;
    c.batch = batch;
    c.seq = 1;
  }
  host_logits_.resize(static_cast<size_t>(batch * vocab_));
}

int Generator::set_router_state(const RouterState& state) { return moe_ ? moe_->set_router_state(state) : 0; }

bool Generator::can_route_causally() const {
  if (!moe_) return true;
  for (MoeLayer* l : moe_->layers())
    if (router_ == RouterKind::expert_choice && l->router().thresholds().empty()) return false;
  return true;
}

std::vector<int> Generator::moe_layer_ids() const {
  std::vector<int> ids;
  if (moe_)
    for (MoeLayer* l : moe_->layers()) ids.push_back(l->layer());
  return ids;
}

std::vector<std::vector<RoutedTo>> Generator::routes_of(int64_t row) const {
  std::vector<std::vector<RoutedTo>> out;
  if (!moe_) return out;
  for (MoeLayer* l : moe_->layers()) {
    const RoutePlan& plan = l->plan();
    std::vector<RoutedTo> mine;
    const int64_t E = static_cast<int64_t>(plan.expert_begin.size()) - 1;
    for (int64_t e = 0; e < E; ++e)
      for (int64_t s = plan.expert_begin[e]; s < plan.expert_begin[e + 1]; ++s)
        if (plan.slot_token[s] == row) mine.push_back({static_cast<int32_t>(e), plan.slot_gate[s]});
    out.push_back(std::move(mine));
  }
  return out;
}

std::vector<std::vector<float>> Generator::logits_along(const std::vector<int32_t>& ids) {
  SY_CHECK(static_cast<int64_t>(ids.size()) <= max_len_, "{} positions, {} allocated", ids.size(), max_len_);
  std::vector<std::vector<float>> out;
  std::vector<int32_t> step(static_cast<size_t>(batch_), 0);
  for (size_t t = 0; t < ids.size(); ++t) {
    std::fill(step.begin(), step.end(), ids[t]);
    ops_.to_host(host_logits_.data(), model_->decode(step.data(), static_cast<int64_t>(t)));
    out.emplace_back(host_logits_.begin(), host_logits_.begin() + vocab_);
  }
  return out;
}

void Generator::decode_step(int32_t id, int64_t position) {
  SY_CHECK(position >= 0 && position < max_len_, "position {}, {} allocated", position, max_len_);
  std::vector<int32_t> step(static_cast<size_t>(batch_), id);
  ops_.to_host(host_logits_.data(), model_->decode(step.data(), position));
}

std::vector<Generation> Generator::generate(const std::vector<std::vector<int32_t>>& prompts,
                                            const SamplingOptions& o, int32_t eod) {
  const int64_t n = static_cast<int64_t>(prompts.size());
  SY_CHECK(n >= 1 && n <= batch_, "{} prompts for a batch of {}", n, batch_);
  std::vector<Generation> out(static_cast<size_t>(n));
  int64_t longest = 0;
  for (int64_t b = 0; b < n; ++b) {
    SY_CHECK(!prompts[b].empty(), "prompt {} is empty", b + 1);
    for (int32_t id : prompts[b]) SY_CHECK(id >= 0 && id < vocab_, "prompt {}: token id {} outside the vocabulary", b + 1, id);
    out[b].prompt = prompts[b];
    longest = std::max<int64_t>(longest, static_cast<int64_t>(prompts[b].size()));
  }
  SY_CHECK(longest <= max_len_, "a prompt of {} tokens, {} positions allocated", longest, max_len_);
  // Lockstep: position t feeds every sequence its prompt token, or once its prompt
  // is over, the token it chose last. Rows beyond the prompts repeat prompt 0.
  std::vector<int32_t> feed(static_cast<size_t>(batch_), 0), next(static_cast<size_t>(n), 0);
  std::vector<bool> done(static_cast<size_t>(n), false);
  const RngStream rng{o.seed, hash64("generate")};
  for (int64_t t = 0; t < max_len_; ++t) {
    bool any = false;
    for (int64_t b = 0; b < batch_; ++b) {
      const int64_t src = b < n ? b : 0;
      const std::vector<int32_t>& p = prompts[src];
      feed[b] = t < static_cast<int64_t>(p.size()) ? p[t] : next[src];
    }
    for (int64_t b = 0; b < n; ++b) any = any || !done[b];
    if (!any) break;
    ops_.to_host(host_logits_.data(), model_->decode(feed.data(), t));
    for (int64_t b = 0; b < n; ++b) {
      if (done[b]) continue;
      Generation& g = out[b];
      const int64_t plen = static_cast<int64_t>(g.prompt.size());
      if (t < plen) g.prompt_experts.push_back(routes_of(b));
      else g.tokens.back().experts = routes_of(b);  // the token fed at t was chosen at t − 1
      if (t + 1 < plen) continue;  // still reading the prompt
      if (static_cast<int64_t>(g.tokens.size()) >= o.max_new_tokens) {
        g.stopped = "max_new_tokens";
        done[b] = true;
        continue;
      }
      if (!g.tokens.empty() && g.tokens.back().id == eod) {
        g.stopped = "eod";
        done[b] = true;
        continue;
      }
      if (t + 1 >= max_len_) {
        g.stopped = "context";
        done[b] = true;
        continue;
      }
      const double u = rng.uniform_double(mix64(static_cast<uint64_t>(b), static_cast<uint64_t>(t)));
      next[b] = sample_token(host_logits_.data() + b * vocab_, vocab_, o, u);
      GeneratedToken tok;
      tok.id = next[b];
      tok.position = t + 1;
      g.tokens.push_back(tok);
    }
  }
  for (Generation& g : out)
    if (g.stopped.empty()) g.stopped = "context";
  return out;
}

}  // namespace sy
