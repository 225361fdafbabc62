// The router table (moe/router_table.cpp) is the one place routers are named: every
// router has one row, `moe.router` accepts exactly the table's names, and what a
// row says about its router (experts per token, the most slots a token fills, the
// balance loss, noise weights, its own metrics) is what the router does.
#include <gtest/gtest.h>

#include <cmath>
#include <iterator>
#include <set>
#include <string>

#include "config/config.h"
#include "core/errors.h"
#include "moe/moe_layer.h"
#include "moe/router_table.h"
#include "test_util.h"

namespace sy {
namespace {

const RouterKind kKinds[] = {RouterKind::switch_top1, RouterKind::gshard_top2, RouterKind::noisy_topk,
                             RouterKind::expert_choice};

TEST(RouterTable, EveryRouterHasOneRowAndOneName) {
  std::set<std::string> names;
  std::set<int> kinds;
  for (const RouterInfo& r : router_table()) {
    EXPECT_TRUE(names.insert(r.name).second) << r.name << " twice";
    EXPECT_TRUE(kinds.insert(static_cast<int>(r.kind)).second) << r.name << "'s kind twice";
    EXPECT_STREQ(router_name(r.kind), r.name);
  }
  EXPECT_EQ(router_table().size(), std::size(kKinds));
  for (RouterKind k : kKinds) EXPECT_EQ(router_info(k).kind, k);
}

TEST(RouterTable, TheConfigTakesExactlyTheTablesNames) {
  for (const RouterInfo& r : router_table()) {
    const Config c = parse_config(std::string("moe:\n  num_experts: 4\n  router: ") + r.name + "\n", "test");
    EXPECT_EQ(c.moe.router, r.kind) << r.name;
  }
  try {
    parse_config("moe:\n  num_experts: 4\n  router: top3\n", "test");
    FAIL() << "router top3 was taken";
  } catch (const Error& e) {
    const std::string m = e.what();
    for (const RouterInfo& r : router_table()) EXPECT_NE(m.find(r.name), std::string::npos) << m;
  }
}

// One MoE layer per router on random inputs, without capacity limits (so a token
// keeps every choice it asks for): the row's numbers are the router's.
TEST(RouterTable, EachRowDescribesItsRouter) {
  for (const RouterInfo& r : router_table()) {
    auto ops = make_ops(Device::cpu);
    ParamStore params(*ops, DType::f64);
    LayerEnv env{*ops, params, DType::f64};
    ModelConfig model;
    model.d_model = 6;
    model.d_ff = 8;
    model.n_layers = 2;
    MoeConfig moe;
    moe.num_experts = 4;
    moe.router = r.kind;
    moe.capacity_factor = 0;  // dropless
    moe.second_policy = SecondPolicy::all;
    moe.top_k = 3;
    moe.ec_capacity = 2;
    MoeRuntime runtime;
    MoeLayer layer(env, "blocks.1.moe", model, moe, 1, runtime);
    params.allocate();
    params.initialize(5);
    for (ParamId i = 0; i < params.size(); ++i)  // the noise and gate weights may start at zero
      if (params.spec(i).name.find(".router.") != std::string::npos) {
        const auto w = test::random_vec(params.spec(i).numel, 40 + i, 0.5);
        ops->from_host(params.value(i), w.data());
      }
    Arena arena(*ops);
    const int64_t B = 2, T = 8, N = B * T;
    layer.allocate(arena, N);
    runtime.ctx = RouteContext{3, 1, true, B, T, 0};
    Tensor x = arena.make(DType::f64, {N, model.d_model}), out = arena.make(DType::f64, {N, model.d_model});
    const auto xv = test::random_vec(N * model.d_model, 9);
    ops->from_host(x, xv.data());
    layer.forward(x, out);
    const RouterStats& s = layer.router().stats();
    EXPECT_DOUBLE_EQ(static_cast<double>(s.choices) / s.tokens, r.experts_per_token(moe)) << r.name;
    int64_t most = 0;
    for (int64_t k = 0; k < 5; ++k)
      if (s.histogram[k] > 0) most = k;
    EXPECT_LE(most, r.max_slots_per_token(moe)) << r.name;
    EXPECT_EQ(s.balance > 0, r.balance_loss) << r.name;
    EXPECT_EQ(params.find("blocks.1.moe.router.w_noise") >= 0, r.noise_weights) << r.name;
    for (const auto& [name, value] : r.extra_metrics(s)) {
      EXPECT_FALSE(std::string(name).empty()) << r.name;
      EXPECT_TRUE(std::isfinite(value)) << r.name << " " << name;
    }
  }
}

}  // namespace
}  // namespace sy
