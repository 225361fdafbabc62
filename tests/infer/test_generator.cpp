// Decoding with a KV cache: the logits after every position equal a full forward
// pass over the same sequence (dense, every token-choice router, expert choice by
// its thresholds), each new token routed alone in both; sampling rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "infer/generator.h"
#include "test_util.h"

namespace sy {
namespace {

ModelConfig tiny_decoder() {
  ModelConfig m;
  m.vocab_size = 37;
  m.d_model = 24;
  m.n_layers = 3;
  m.n_heads = 3;
  m.d_ff = 40;
  m.max_seq = 20;
  return m;
}

MoeConfig moe_of(RouterKind r) {
  MoeConfig c;
  c.num_experts = 4;
  c.router = r;
  c.every = 2;
  return c;
}

// Thresholds of every expert-choice layer: roughly 1/E, so tokens get 0 to E experts.
RouterState thresholds_for(const std::vector<int>& layers, int64_t E) {
  RouterState s;
  for (int l : layers) {
    std::vector<double> t(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) t[e] = 0.2 + 0.03 * static_cast<double>(e);
    s["blocks." + std::to_string(l) + ".moe.router.thresholds"] = t;
  }
  return s;
}

std::vector<int32_t> sequence(int64_t n, int64_t V) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7 + 3) % V);
  return ids;
}

// The full pass: every position at once, routed as at inference.
std::vector<float> full_logits(const ModelConfig& m, const MoeConfig& moe, const std::vector<int32_t>& ids,
                               const RouterState& state, bool bf16 = false) {
  auto ops = make_ops(Device::cpu);
  ops->set_bf16_operands(bf16);
  const int64_t T = static_cast<int64_t>(ids.size());
  std::unique_ptr<MoeModel> mm;
  if (moe.enabled()) mm = std::make_unique<MoeModel>(m, moe);
  Transformer model(*ops, m, 0.0, DType::f32, mm ? mm->factory() : FfnFactory{});
  model.allocate(1, T);
  model.init_params(99);
  if (mm) {
    for (MoeLayer* l : mm->layers()) {
      auto it = state.find("blocks." + std::to_string(l->layer()) + ".moe.router.thresholds");
      if (it != state.end()) l->router().set_thresholds(it->second);
    }
    RouteContext& c = mm->runtime().ctx;
    c.training = false;
    c.inference = true;
    c.batch = 1;
    c.seq = T;
  }
  const std::vector<int32_t> targets(ids.size(), -1);
  model.forward(ids.data(), targets.data());
  std::vector<float> out(static_cast<size_t>(T * m.vocab_size));
  ops->to_host(out.data(), model.logits());
  return out;
}

class DecodeMatchesFullPass : public ::testing::TestWithParam<int> {};

TEST_P(DecodeMatchesFullPass, AtEveryPosition) {
  const ModelConfig m = tiny_decoder();
  const int which = GetParam();  // 0: dense; then each router
  const RouterKind routers[] = {RouterKind::switch_top1, RouterKind::gshard_top2, RouterKind::noisy_topk,
                                RouterKind::expert_choice};
  MoeConfig moe;
  if (which > 0) moe = moe_of(routers[which - 1]);
  auto ops = make_ops(Device::cpu);
  const int64_t T = 17;
  Generator gen(m, moe, *ops, /*batch=*/2, /*max_len=*/T);
  gen.params().initialize(99);
  const RouterState state = thresholds_for(gen.moe_layer_ids(), moe.num_experts);
  gen.set_router_state(state);
  ASSERT_TRUE(gen.can_route_causally());
  const std::vector<int32_t> ids = sequence(T, m.vocab_size);
  const std::vector<std::vector<float>> step = gen.logits_along(ids);
  const std::vector<float> full = full_logits(m, moe, ids, state);
  double worst = 0;
  for (int64_t t = 0; t < T; ++t) {
    double scale = 0;
    for (int64_t v = 0; v < m.vocab_size; ++v) scale = std::max(scale, std::abs(double(full[t * m.vocab_size + v])));
    for (int64_t v = 0; v < m.vocab_size; ++v)
      worst = std::max(worst, std::abs(double(step[t][v]) - full[t * m.vocab_size + v]) / scale);
  }
  EXPECT_LT(worst, 1e-5) << "model " << which;
  // Not a model that predicts the same everywhere: positions differ.
  EXPECT_NE(step[0], step[T - 1]);
}

INSTANTIATE_TEST_SUITE_P(Routers, DecodeMatchesFullPass, ::testing::Range(0, 5));

// precision: bf16 rounds the operands of every product, attention's included; the
// decode op rounds at the same places, so decoding still equals a full pass (to
// what a bf16 rounding flip between two fp32 paths can move), far closer than to
// the fp32 model.
TEST(Decode, Bf16MatchesAFullBf16Pass) {
  const ModelConfig m = tiny_decoder();
  auto ops = make_ops(Device::cpu);
  ops->set_bf16_operands(true);
  const int64_t T = 17;
  Generator gen(m, MoeConfig{}, *ops, 1, T);
  gen.params().initialize(99);
  const std::vector<int32_t> ids = sequence(T, m.vocab_size);
  const auto step = gen.logits_along(ids);
  const auto full = full_logits(m, MoeConfig{}, ids, {}, true), fp32 = full_logits(m, MoeConfig{}, ids, {}, false);
  double worst = 0, from_fp32 = 0;
  for (int64_t t = 0; t < T; ++t) {
    double scale = 0;
    for (int64_t v = 0; v < m.vocab_size; ++v) scale = std::max(scale, std::abs(double(full[t * m.vocab_size + v])));
    for (int64_t v = 0; v < m.vocab_size; ++v) {
      worst = std::max(worst, std::abs(double(step[t][v]) - full[t * m.vocab_size + v]) / scale);
      from_fp32 = std::max(from_fp32, std::abs(double(fp32[t * m.vocab_size + v]) - full[t * m.vocab_size + v]) / scale);
    }
  }
  std::printf("bf16 decode vs bf16 full pass %.3g; bf16 vs fp32 full pass %.3g\n", worst, from_fp32);
  EXPECT_LT(worst, 2e-3);
  EXPECT_LT(worst, from_fp32 / 5);
}

// A position fed again replaces its token and forgets the later ones: decoding a
// second continuation from position 5 equals decoding that sequence from scratch.
TEST(Decode, RewindingToAnEarlierPositionForgetsTheRest) {
  const ModelConfig m = tiny_decoder();
  auto ops = make_ops(Device::cpu);
  Generator gen(m, MoeConfig{}, *ops, 1, 12);
  gen.params().initialize(5);
  std::vector<int32_t> a = sequence(12, m.vocab_size), b = a;
  for (size_t i = 5; i < b.size(); ++i) b[i] = static_cast<int32_t>((b[i] + 11) % m.vocab_size);
  const auto fresh = gen.logits_along(b);
  const auto other = gen.logits_along(a);
  for (size_t t = 5; t < b.size(); ++t) {
    gen.decode_step(b[t], static_cast<int64_t>(t));
    EXPECT_EQ(gen.last_logits(), fresh[t]) << "position " << t;
  }
  EXPECT_NE(other.back(), fresh.back());
}

TEST(Sampling, GreedyTopK1AndTinyTemperatureAgree) {
  const std::vector<float> z = {0.1f, 2.0f, -1.0f, 2.0f, 1.5f};
  SamplingOptions greedy;
  greedy.temperature = 0;
  EXPECT_EQ(sample_token(z.data(), 5, greedy, 0.99), 1) << "ties go to the smaller id";
  SamplingOptions k1;
  k1.top_k = 1;
  for (double u : {0.0, 0.5, 0.999}) EXPECT_EQ(sample_token(z.data(), 5, k1, u), 1);
  const std::vector<float> z2 = {0.1f, 2.0f, -1.0f, 1.9f, 1.5f};
  SamplingOptions cold;
  cold.temperature = 1e-4;
  for (double u : {0.0, 0.5, 0.999}) EXPECT_EQ(sample_token(z2.data(), 5, cold, u), 1);
}

TEST(Sampling, TopKAndTopPRestrictTheCandidates) {
  const std::vector<float> z = {3.0f, 2.0f, 1.0f, 0.0f};
  SamplingOptions o;
  o.top_k = 2;
  std::vector<int> seen(4, 0);
  for (int i = 0; i < 100; ++i) ++seen[sample_token(z.data(), 4, o, i / 100.0)];
  EXPECT_GT(seen[0], seen[1]);
  EXPECT_GT(seen[1], 0);
  EXPECT_EQ(seen[2] + seen[3], 0);
  // p = softmax(3, 2, 1, 0) ≈ 0.64, 0.24, 0.09, 0.03: top-p 0.7 keeps the first two.
  SamplingOptions p;
  p.top_p = 0.7;
  std::fill(seen.begin(), seen.end(), 0);
  for (int i = 0; i < 100; ++i) ++seen[sample_token(z.data(), 4, p, i / 100.0)];
  EXPECT_GT(seen[1], 0);
  EXPECT_EQ(seen[2] + seen[3], 0);
  // The inverse CDF: u below p₀ gives token 0, above it token 1 (renormalised over two).
  EXPECT_EQ(sample_token(z.data(), 4, p, 0.1), 0);
  EXPECT_EQ(sample_token(z.data(), 4, p, 0.95), 1);
}

TEST(Generate, DeterministicGreedyAndSeededSampling) {
  const ModelConfig m = tiny_decoder();
  const MoeConfig moe = moe_of(RouterKind::gshard_top2);
  auto ops = make_ops(Device::cpu);
  auto run = [&](const SamplingOptions& o) {
    Generator gen(m, moe, *ops, 2, 16, o.seed);
    gen.params().initialize(5);
    return gen.generate({{1, 2, 3}, {4, 5, 6, 7, 8}}, o, /*eod=*/-1);
  };
  auto ids = [](const std::vector<Generation>& g) {
    std::vector<std::vector<int32_t>> out;
    for (const Generation& x : g) {
      out.emplace_back();
      for (const GeneratedToken& t : x.tokens) out.back().push_back(t.id);
    }
    return out;
  };
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 6;
  const auto a = run(greedy), b = run(greedy);
  EXPECT_EQ(ids(a), ids(b));
  ASSERT_EQ(a[0].tokens.size(), 6u);
  EXPECT_EQ(a[0].stopped, "max_new_tokens");
  EXPECT_EQ(a[0].tokens[0].position, 3);
  EXPECT_EQ(a[1].tokens[0].position, 5);
  // Each generated token fed back was routed: two experts each (gshard, always the second in eval).
  for (const GeneratedToken& t : a[0].tokens) {
    ASSERT_EQ(t.experts.size(), 1u);
    EXPECT_EQ(t.experts[0].size(), 2u);
  }
  SamplingOptions k1 = greedy;
  k1.temperature = 1;
  k1.top_k = 1;
  EXPECT_EQ(ids(run(k1)), ids(a)) << "top-k 1 is greedy";
  SamplingOptions s = greedy;
  s.temperature = 1.5;
  s.seed = 7;
  const auto s1 = run(s), s2 = run(s);
  EXPECT_EQ(ids(s1), ids(s2)) << "the same seed gives the same tokens";
  s.seed = 8;
  EXPECT_NE(ids(run(s)), ids(s1)) << "another seed gives other tokens (almost surely at temperature 1.5)";
  // The context ends generation: 16 positions, a 5-token prompt → 11 new at most... but
  // prompt 0 (3 tokens) reaches max_new_tokens first.
  SamplingOptions longer = greedy;
  longer.max_new_tokens = 100;
  const auto c = run(longer);
  EXPECT_EQ(c[0].stopped, "context");
  EXPECT_EQ(c[0].tokens.size(), 13u);
  EXPECT_EQ(c[1].tokens.size(), 11u);
}

TEST(Generate, StopsAtTheEndOfDocument) {
  const ModelConfig m = tiny_decoder();
  auto ops = make_ops(Device::cpu);
  Generator gen(m, MoeConfig{}, *ops, 1, 20);
  gen.params().initialize(5);
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 10;
  const auto free_run = gen.generate({{1, 2, 3}}, greedy, -1);
  ASSERT_GE(free_run[0].tokens.size(), 3u);
  const int32_t third = free_run[0].tokens[2].id;
  // With the third token as "end of document", generation stops right after it.
  const auto stopped = gen.generate({{1, 2, 3}}, greedy, third);
  int64_t first = 0;
  while (free_run[0].tokens[first].id != third) ++first;
  EXPECT_EQ(stopped[0].stopped, "eod");
  EXPECT_EQ(static_cast<int64_t>(stopped[0].tokens.size()), first + 1);
}

}  // namespace
}  // namespace sy
