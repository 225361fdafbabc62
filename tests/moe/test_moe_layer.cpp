// The MoE layer: finite-difference gradients of the whole layer for every router
// (selections held fixed), the packed experts path against the per-expert
// reference, tokens routed nowhere, order-independent random draws, z-loss.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "moe/moe_layer.h"
#include "model/model_fixture.h"
#include "moe/moe_model.h"
#include "test_util.h"

namespace sy {
namespace {

struct Case {
  const char* name;
  RouterKind router;
  double capacity_factor = 1.0;
  double ec_capacity = 2.0;
  int64_t cap = 0;  // max experts per token (capped EC)
  ExpertKind kind = ExpertKind::glu;
  double jitter = 0.0;
  Arch arch = Arch::encoder;
  double z_loss = 0.05;
};

struct LayerHarness {
  std::unique_ptr<Ops> ops = make_ops(Device::cpu);
  DType dtype;
  ParamStore params;
  LayerEnv env;
  Arena arena{*ops};
  MoeRuntime runtime;
  ModelConfig model;
  MoeConfig moe;
  std::unique_ptr<MoeLayer> layer;
  int64_t B = 2, T = 6, C = 5;
  Tensor x, out, dout, dx;

  LayerHarness(const Case& c, DType dt = DType::f64) : dtype(dt), params(*ops, dt), env{*ops, params, dt} {
    model.arch = c.arch;
    model.d_model = C;
    model.d_ff = 7;
    model.n_layers = 2;
    model.init_std = 0.4;
    moe.num_experts = 4;
    moe.router = c.router;
    moe.capacity_factor = c.capacity_factor;
    moe.ec_capacity = c.ec_capacity;
    moe.max_experts_per_token = c.cap;
    moe.expert_kind = c.kind;
    moe.jitter = c.jitter;
    moe.z_loss = c.z_loss;
    moe.aux_loss = 0.3;  // large, so a wrong aux gradient cannot hide
    moe.w_importance = moe.w_load = 0.2;
    moe.top_k = 2;
    layer = std::make_unique<MoeLayer>(env, "blocks.1.moe", model, moe, 1, runtime);
    params.allocate();
    params.initialize(3);
    // Random router (and noise) weights: the defaults may be zeros.
    for (ParamId i = 0; i < params.size(); ++i)
      if (params.spec(i).name.find(".router.") != std::string::npos) {
        auto w = test::random_vec(params.spec(i).numel, 100 + i, 0.6);
        set(params.value(i), w);
      }
    layer->allocate(arena, B * T);
    runtime.ctx = RouteContext{7, 3, true, B, T, 0};
    x = arena.make(dt, {B * T, C});
    out = arena.make(dt, {B * T, C});
    dout = arena.make(dt, {B * T, C});
    dx = arena.make(dt, {B * T, C});
    set(x, test::random_vec(B * T * C, 1));
    set(dout, test::random_vec(B * T * C, 2));
  }
  void set(Tensor t, const std::vector<double>& v) {
    if (dtype == DType::f64) ops->from_host(t, v.data());
    else {
      std::vector<float> f(v.begin(), v.end());
      ops->from_host(t, f.data());
    }
  }
  std::vector<double> get(const Tensor& t) {
    std::vector<double> v(static_cast<size_t>(t.numel()));
    if (dtype == DType::f64) ops->to_host(v.data(), t);
    else {
      std::vector<float> f(v.size());
      ops->to_host(f.data(), t);
      std::copy(f.begin(), f.end(), v.begin());
    }
    return v;
  }
  double loss() {
    ops->fill(out, 0.0);
    layer->forward(x, out);
    const auto o = get(out), d = get(dout);
    double s = 0;
    for (size_t i = 0; i < o.size(); ++i) s += o[i] * d[i];
    return s + layer->aux_loss();
  }
};

class MoeLayerGradCheck : public ::testing::TestWithParam<Case> {};

TEST_P(MoeLayerGradCheck, InputsExpertsAndRouterMatchFiniteDifferences) {
  LayerHarness h(GetParam());
  h.loss();  // selects
  h.layer->router().hold_selections(true);
  h.params.zero_grads();
  h.loss();
  BackwardScratch unused;
  h.layer->backward(h.dout, h.dx, unused);
  const auto dx = h.get(h.dx);
  auto xv = h.get(h.x);
  const auto ndx = test::numeric_grad(xv, [&] {
    h.set(h.x, xv);
    return h.loss();
  });
  h.set(h.x, xv);
  EXPECT_CLOSE(dx, ndx, 1e-5, 1e-8) << "input gradient";
  const auto g = h.get(h.params.grads());
  auto w = h.get(h.params.values());
  const auto nw = test::numeric_grad(w, [&] {
    h.set(h.params.values(), w);
    return h.loss();
  });
  for (ParamId i = 0; i < h.params.size(); ++i) {
    const ParamSpec& s = h.params.spec(i);
    std::vector<double> a(g.begin() + s.offset, g.begin() + s.offset + s.numel);
    std::vector<double> n(nw.begin() + s.offset, nw.begin() + s.offset + s.numel);
    EXPECT_CLOSE(a, n, 1e-5, 1e-8) << s.name;
    if (s.name.find("router.w_gate") != std::string::npos) {
      double mx = 0;
      for (double v : a) mx = std::max(mx, std::abs(v));
      EXPECT_GT(mx, 1e-4) << "the router must receive a real gradient";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Routers, MoeLayerGradCheck,
    ::testing::Values(Case{"switch_top1", RouterKind::switch_top1},
                      Case{"switch_top1_jitter", RouterKind::switch_top1, 1.0, 2.0, 0, ExpertKind::glu, 0.2},
                      Case{"gshard_top2", RouterKind::gshard_top2},
                      Case{"noisy_topk", RouterKind::noisy_topk, 0.0},
                      Case{"expert_choice", RouterKind::expert_choice},
                      Case{"expert_choice_ffn_experts", RouterKind::expert_choice, 1.0, 2.0, 0, ExpertKind::ffn},
                      Case{"expert_choice_by_position", RouterKind::expert_choice, 1.0, 2.0, 0,
                           ExpertKind::glu, 0.0, Arch::decoder},
                      Case{"expert_choice_capped", RouterKind::expert_choice, 1.0, 2.0, 2}),
    [](const auto& info) { return std::string(info.param.name); });

// Experts say so in their parameter spec (they are sharded over expert-parallel
// ranks and reduced over the data-parallel group); the router is replicated.
TEST(MoeLayer, ExpertWeightsAreFlaggedAsSuch) {
  for (ExpertKind kind : {ExpertKind::glu, ExpertKind::ffn}) {
    Case c{"", RouterKind::noisy_topk};
    c.kind = kind;
    LayerHarness h(c);
    int experts = 0;
    for (ParamId i = 0; i < h.params.size(); ++i) {
      const ParamSpec& s = h.params.spec(i);
      const bool named = s.name.find(".experts.") != std::string::npos;
      EXPECT_EQ(s.expert, named) << s.name;
      experts += s.expert;
    }
    EXPECT_EQ(experts, 4 * (kind == ExpertKind::glu ? 3 : 2));  // router w_gate, w_noise: not experts
  }
}

TEST(MoeLayer, PackedExpertsEqualThePerExpertReferenceBitwise) {
  for (RouterKind r : {RouterKind::switch_top1, RouterKind::gshard_top2, RouterKind::expert_choice}) {
    for (DType dt : {DType::f32, DType::f64}) {
      LayerHarness h(Case{"", r}, dt);
      h.ops->fill(h.out, 0.0);
      h.layer->forward(h.x, h.out);
      const auto packed = h.get(h.out);
      h.ops->fill(h.out, 0.0);
      h.layer->forward_reference(h.x, h.out);
      EXPECT_EQ(packed, h.get(h.out)) << router_name(r);
    }
  }
}

// The layer's output against docs/routing.md's formula computed from scratch here:
// p = softmax(x·W_gᵀ); expert choice takes each expert's top-C tokens of a group
// by p[:, e] (groups: one position across the batch, or the whole micro-batch);
// y_t = Σ_{e chose t} p_t[e] · W_out,e (gelu(W_in,e x_t) ⊙ W_gate,e x_t).
// (The packed-vs-reference test shares the layer's routing plan; this one does not.)
TEST(MoeLayer, ExpertChoiceOutputIsTheRoutingFormulaFromScratch) {
  for (Arch arch : {Arch::decoder, Arch::encoder}) {  // by_position groups, then one group of B·T
    Case c{"", RouterKind::expert_choice};
    c.arch = arch;
    LayerHarness h(c);
    const int64_t N = h.B * h.T, C = h.C, E = 4, H = 7;
    const auto X = h.get(h.x);
    auto param = [&](const std::string& name) {
      const ParamId id = h.params.find("blocks.1.moe." + name);
      EXPECT_GE(id, 0) << name;
      return h.get(h.params.value(id));
    };
    const auto Wr = param("router.w_gate");  // [E, C]
    std::vector<double> P(static_cast<size_t>(N * E));
    for (int64_t t = 0; t < N; ++t) {
      double z[4], mx = -1e300, sum = 0;
      for (int64_t e = 0; e < E; ++e) {
        z[e] = 0;
        for (int64_t k = 0; k < C; ++k) z[e] += X[t * C + k] * Wr[e * C + k];
        mx = std::max(mx, z[e]);
      }
      for (int64_t e = 0; e < E; ++e) sum += std::exp(z[e] - mx);
      for (int64_t e = 0; e < E; ++e) P[t * E + e] = std::exp(z[e] - mx) / sum;
    }
    std::vector<std::vector<int64_t>> groups;
    if (arch == Arch::decoder) {
      for (int64_t j = 0; j < h.T; ++j) {
        groups.emplace_back();
        for (int64_t b = 0; b < h.B; ++b) groups.back().push_back(b * h.T + j);
      }
    } else {
      groups.emplace_back();
      for (int64_t t = 0; t < N; ++t) groups.back().push_back(t);
    }
    std::vector<double> want(static_cast<size_t>(N * C), 0.0);
    for (int64_t e = 0; e < E; ++e) {
      const auto Win = param("experts." + std::to_string(e) + ".w_in");
      const auto Wg = param("experts." + std::to_string(e) + ".w_gate");
      const auto Wo = param("experts." + std::to_string(e) + ".w_out");
      for (const auto& g : groups) {
        const int64_t S = static_cast<int64_t>(g.size());
        const int64_t cap = std::min<int64_t>(S, static_cast<int64_t>(std::ceil(2.0 * S / E)));
        std::vector<int64_t> order = g;
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t a, int64_t b) { return P[a * E + e] > P[b * E + e]; });
        for (int64_t i = 0; i < cap; ++i) {
          const int64_t t = order[i];
          std::vector<double> hid(H);
          for (int64_t j = 0; j < H; ++j) {
            double a = 0, gt = 0;
            for (int64_t k = 0; k < C; ++k) {
              a += Win[j * C + k] * X[t * C + k];
              gt += Wg[j * C + k] * X[t * C + k];
            }
            hid[j] = 0.5 * a * (1 + std::tanh(0.7978845608028654 * (a + 0.044715 * a * a * a))) * gt;
          }
          for (int64_t k = 0; k < C; ++k) {
            double y = 0;
            for (int64_t j = 0; j < H; ++j) y += Wo[k * H + j] * hid[j];
            want[t * C + k] += P[t * E + e] * y;
          }
        }
      }
    }
    h.ops->fill(h.out, 0.0);
    h.layer->forward(h.x, h.out);
    const auto got = h.get(h.out);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-6) << (arch == Arch::decoder ? "by_position" : "contiguous") << " at " << i;
  }
}

TEST(MoeLayer, ATokenRoutedNowhereGetsZeroAndNoRouterGradient) {
  Case c{"", RouterKind::expert_choice, 1.0, /*c=*/0.5};
  c.z_loss = 0.0;  // the z-loss would reach every token's router input
  LayerHarness h(c);
  h.ops->fill(h.out, 0.0);
  h.layer->forward(h.x, h.out);
  const std::set<int32_t> routed(h.layer->plan().slot_token.begin(), h.layer->plan().slot_token.end());
  const int64_t N = h.B * h.T;
  ASSERT_LT(static_cast<int64_t>(routed.size()), N) << "c = 0.5 must leave tokens unrouted";
  EXPECT_EQ(h.layer->stats().histogram[0], N - static_cast<int64_t>(routed.size()));
  BackwardScratch unused;
  h.layer->backward(h.dout, h.dx, unused);
  const auto out = h.get(h.out), dx = h.get(h.dx);
  for (int32_t t = 0; t < N; ++t) {
    bool any_out = false, any_grad = false;
    for (int64_t k = 0; k < h.C; ++k) {
      any_out |= out[t * h.C + k] != 0.0;
      any_grad |= dx[t * h.C + k] != 0.0;
    }
    EXPECT_EQ(any_out, routed.count(t) > 0) << "token " << t;
    EXPECT_EQ(any_grad, routed.count(t) > 0) << "token " << t;
  }
}

TEST(MoeLayer, GshardSecondChoiceDrawDependsOnlyOnTheTokenIndex) {
  // Route 12 tokens at once, then only the last 6 (first_token = 6) through a copy
  // of the layer: the same tokens get the same choices (dropless, so capacity
  // cannot interfere).
  LayerHarness all(Case{"", RouterKind::gshard_top2, 0.0});
  all.layer->forward(all.x, all.out);
  std::set<std::pair<int, int>> second_half;
  const RoutePlan& p = all.layer->plan();
  for (int e = 0; e < 4; ++e)
    for (int64_t s = p.expert_begin[e]; s < p.expert_begin[e + 1]; ++s)
      if (p.slot_token[s] >= 6) second_half.insert({p.slot_token[s] - 6, e});
  ParamStore params(*all.ops, DType::f64);
  LayerEnv env{*all.ops, params, DType::f64};
  MoeRuntime rt;
  rt.ctx = RouteContext{7, 3, true, 1, 6, /*first_token=*/6};
  MoeLayer layer(env, "blocks.1.moe", all.model, all.moe, 1, rt);
  params.allocate();
  all.ops->copy(params.values(), all.params.values());
  Arena arena(*all.ops);
  layer.allocate(arena, 6);
  Tensor x6 = arena.make(DType::f64, {6, all.C}), o6 = arena.make(DType::f64, {6, all.C});
  all.ops->copy(x6, all.x.view({6, all.C}, 6 * all.C));
  layer.forward(x6, o6);
  std::set<std::pair<int, int>> alone;
  const RoutePlan& q = layer.plan();
  for (int e = 0; e < 4; ++e)
    for (int64_t s = q.expert_begin[e]; s < q.expert_begin[e + 1]; ++s) alone.insert({q.slot_token[s], e});
  EXPECT_EQ(alone, second_half);
  EXPECT_LT(alone.size(), 12u) << "some second choices must have been skipped at random";
  EXPECT_GT(alone.size(), 6u) << "and some kept";
}

TEST(MoeLayer, ZLossMatchesTheHandValue) {
  // Router input = logits (identity router weights, d_model = E = 2):
  // z0 = z1 = [0, 0], z2 = [ln 9, 0], z3 = [0, ln 9] → mean (logsumexp)² = 2.8912.
  auto ops = make_ops(Device::cpu);
  ParamStore params(*ops, DType::f64);
  LayerEnv env{*ops, params, DType::f64};
  ModelConfig m;
  m.d_model = 2;
  m.d_ff = 3;
  MoeConfig cfg;
  cfg.num_experts = 2;
  cfg.router = RouterKind::switch_top1;
  cfg.z_loss = 1.0;
  cfg.aux_loss = 0.0;
  MoeRuntime rt;
  rt.ctx = RouteContext{1, 0, true, 1, 4, 0};
  MoeLayer layer(env, "moe", m, cfg, 1, rt);
  params.allocate();
  const double eye[] = {1, 0, 0, 1};
  ops->from_host(params.value(params.find("moe.router.w_gate")), eye);
  Arena arena(*ops);
  layer.allocate(arena, 4);
  const double l9 = std::log(9.0);
  const double xs[] = {0, 0, 0, 0, l9, 0, 0, l9};
  Tensor x = arena.make(DType::f64, {4, 2}), out = arena.make(DType::f64, {4, 2});
  ops->from_host(x, xs);
  layer.forward(x, out);
  EXPECT_NEAR(layer.stats().z, 2.8912, 5e-5);
  const double expected = (2 * std::pow(std::log(2.0), 2) + 2 * std::pow(std::log(10.0), 2)) / 4;
  EXPECT_NEAR(layer.stats().z, expected, 1e-12);
  EXPECT_NEAR(layer.aux_loss(), expected, 1e-12);
  // docs/routing.md's switch vector through the whole layer: balance loss 1.0.
  EXPECT_NEAR(layer.stats().balance, 1.0, 1e-12);
  EXPECT_EQ(layer.stats().dropped, 1);
}

}  // namespace
}  // namespace sy

namespace sy {
namespace {

TEST(MoeLayer, ExpertChoiceThresholdEvaluationIsPerToken) {
  Case c{"", RouterKind::expert_choice};
  c.arch = Arch::decoder;  // by_position groups
  LayerHarness h(c);
  h.layer->forward(h.x, h.out);  // training: samples θ_e
  h.layer->router().end_step();  // the step ends (a world of one): θ_e learned
  const std::vector<double> theta = h.layer->router().thresholds();
  ASSERT_EQ(theta.size(), 4u);
  h.layer->router().set_eval_routing(EvalRouting::threshold);
  h.runtime.ctx.training = false;
  h.layer->forward(h.x, h.out);
  // Recompute p = softmax(x·W_gᵀ) and check: chosen ⇔ p_t[e] ≥ θ_e.
  const auto x = h.get(h.x);
  const auto w = h.get(h.params.value(h.params.find("blocks.1.moe.router.w_gate")));
  std::set<std::pair<int, int>> chosen;
  const RoutePlan& p = h.layer->plan();
  for (int e = 0; e < 4; ++e)
    for (int64_t s = p.expert_begin[e]; s < p.expert_begin[e + 1]; ++s) chosen.insert({p.slot_token[s], e});
  for (int t = 0; t < h.B * h.T; ++t) {
    double z[4], mx = -1e300, sum = 0;
    for (int e = 0; e < 4; ++e) {
      z[e] = 0;
      for (int64_t k = 0; k < h.C; ++k) z[e] += x[t * h.C + k] * w[e * h.C + k];
      mx = std::max(mx, z[e]);
    }
    for (int e = 0; e < 4; ++e) sum += std::exp(z[e] - mx);
    for (int e = 0; e < 4; ++e) {
      const double prob = std::exp(z[e] - mx) / sum;
      if (std::abs(prob - theta[e]) < 1e-9) continue;  // too close to call
      EXPECT_EQ(chosen.count({t, e}) > 0, prob >= theta[e]) << "token " << t << " expert " << e;
    }
  }
}

// θ moves once per training step, by the mean over that step's groups of the C-th
// largest score each expert saw, so that by-position grouping (one group per
// position, many per step) averages over the same window as contiguous grouping
// (one group). From scratch: p = softmax(x·Wᵀ), groups = positions across the batch.
TEST(MoeLayer, ExpertChoiceThresholdMovesOncePerStepByTheMeanOverGroups) {
  Case c{"", RouterKind::expert_choice};
  c.arch = Arch::decoder;  // by_position groups: T groups of B tokens
  LayerHarness h(c);
  const int64_t E = 4, N = h.B * h.T;
  const auto x = h.get(h.x);
  const auto w = h.get(h.params.value(h.params.find("blocks.1.moe.router.w_gate")));
  std::vector<double> p(static_cast<size_t>(N * E));
  for (int64_t t = 0; t < N; ++t) {
    double z[4], mx = -1e300, sum = 0;
    for (int e = 0; e < 4; ++e) {
      z[e] = 0;
      for (int64_t k = 0; k < h.C; ++k) z[e] += x[t * h.C + k] * w[e * h.C + k];
      mx = std::max(mx, z[e]);
    }
    for (int e = 0; e < 4; ++e) sum += std::exp(z[e] - mx);
    for (int e = 0; e < 4; ++e) p[t * E + e] = std::exp(z[e] - mx) / sum;
  }
  std::vector<double> mean(E, 0.0);
  const int64_t C = expert_choice_capacity(h.moe.ec_capacity, h.B, E);
  for (int64_t j = 0; j < h.T; ++j)
    for (int64_t e = 0; e < E; ++e) {
      std::vector<double> col;
      for (int64_t b = 0; b < h.B; ++b) col.push_back(p[(b * h.T + j) * E + e]);
      std::sort(col.rbegin(), col.rend());
      mean[e] += col[C - 1] / static_cast<double>(h.T);
    }
  h.layer->forward(h.x, h.out);
  EXPECT_TRUE(h.layer->router().thresholds().empty()) << "θ moved inside the step";
  h.layer->router().end_step();
  const std::vector<double> theta1 = h.layer->router().thresholds();
  ASSERT_EQ(theta1.size(), 4u);
  for (int64_t e = 0; e < E; ++e) EXPECT_NEAR(theta1[e], mean[e], 1e-6) << "expert " << e;
  // Two forwards in one step (gradient accumulation) and a step without samples:
  // θ = d·θ + (1−d)·mean = mean again, and stays.
  h.layer->forward(h.x, h.out);
  h.layer->forward(h.x, h.out);
  h.layer->router().end_step();
  h.layer->router().end_step();
  for (int64_t e = 0; e < E; ++e) EXPECT_NEAR(h.layer->router().thresholds()[e], theta1[e], 1e-12);
}

TEST(MoeLayer, FlopAccountingCountsExpertsAtTheirMeanUse) {
  const ModelConfig m = test::model_of(Arch::decoder, 20, 8, 2, 2, 16, 4);
  MoeConfig cfg;
  cfg.num_experts = 4;
  cfg.router = RouterKind::expert_choice;
  cfg.ec_capacity = 2.0;
  auto ops = make_ops(Device::cpu);
  MoeModel moe(m, cfg);
  Transformer model(*ops, m, 0.0, DType::f32, moe.factory());
  model.allocate(2, 4);
  model.init_params(1);
  moe.runtime().ctx = RouteContext{1, 0, true, 2, 4, 0};
  std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6, 7, 8};
  model.forward(ids.data(), ids.data());
  moe.snapshot();
  // EC at c = 2 over 8 tokens and 4 experts: 2 experts per token on average. The
  // one MoE block: 2 × (3·8·16) expert weights + 4·8 router weights, in place of a
  // dense GLU's 3·8·16.
  EXPECT_DOUBLE_EQ(moe.active_params_delta(), 2.0 * 3 * 8 * 16 + 4 * 8 - 3 * 8 * 16);
}

}  // namespace
}  // namespace sy
