// A small MoE model of each router learns: its loss on a fixed token stream falls
// well below the start within a bounded number of steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "model/model_fixture.h"
#include "moe/moe_model.h"
#include "model/fixed_batch_training.h"

namespace sy {
namespace {

double train(const MoeConfig& moe_cfg, int steps, double* first) {
  auto ops = make_ops(Device::cpu);
  const ModelConfig cfg = test::model_of(Arch::decoder, 32, 32, 2, 4, 48, 16);
  const int64_t B = 4, T = 16;
  MoeModel moe(cfg, moe_cfg);
  Transformer model(*ops, cfg, 0.0, DType::f32, moe.factory());
  EXPECT_EQ(moe.layers().size(), 1u);
  model.allocate(B, T);
  model.init_params(11);
  auto stream = test::random_tokens(B * T + 1, cfg.vocab_size, 12);
  std::vector<int32_t> ids(stream.begin(), stream.end() - 1), targets(stream.begin() + 1, stream.end());
  const std::vector<double> nll = test::train_fixed_batch(
      *ops, model, ids, targets, steps, [&](int s) { moe.runtime().ctx = RouteContext{5, s, true, B, T, 0}; });
  *first = nll.front();
  return nll.back();
}

class MoeTrains : public ::testing::TestWithParam<RouterKind> {};

TEST_P(MoeTrains, LossFalls) {
  MoeConfig m;
  m.num_experts = 4;
  m.router = GetParam();
  m.z_loss = 1e-3;
  double first = 0;
  const double last = train(m, 120, &first);
  EXPECT_GT(first, 3.0);  // ≈ ln 32 at the start
  EXPECT_LT(last, 0.5) << router_name(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Routers, MoeTrains,
                         ::testing::Values(RouterKind::switch_top1, RouterKind::gshard_top2,
                                           RouterKind::noisy_topk, RouterKind::expert_choice),
                         [](const auto& info) { return std::string(router_name(info.param)); });

// moe.device_routing: the same model trained with routing on the backend (the CPU
// backend's Thrust build of the device algorithms) and on the host gives the same
// losses step by step, the same router statistics and threshold samples: the same
// function, computed on a new path. (In a build without Thrust: skipped.)
struct BackendCase {
  const char* name;
  RouterKind router;
  Arch arch;
  int64_t group_size;
  double capacity_factor;
  double jitter = 0;
};

struct TrainedRun {
  std::vector<double> nll;
  std::vector<RouterStats> stats;
  std::vector<double> theta;
  std::vector<float> params;
  bool on_backend = false;  // the last forward's plan
};

TrainedRun train_routing(const BackendCase& c, bool device_routing, int steps) {
  auto ops = make_ops(Device::cpu);
  const ModelConfig cfg = test::model_of(c.arch, 32, 32, 2, 4, 48, 16);
  const int64_t B = 4, T = 16;
  MoeConfig m;
  m.num_experts = 4;
  m.router = c.router;
  m.group_size = c.group_size;
  m.capacity_factor = c.capacity_factor;
  m.z_loss = 1e-2;
  m.aux_loss = 0.1;
  m.device_routing = device_routing;
  m.jitter = c.jitter;
  MoeModel moe(cfg, m);
  Transformer model(*ops, cfg, 0.0, DType::f32, moe.factory());
  model.allocate(B, T);
  model.init_params(11);
  auto stream = test::random_tokens(B * T + 1, cfg.vocab_size, 12);
  std::vector<int32_t> ids(stream.begin(), stream.end() - 1), targets(stream.begin() + 1, stream.end());
  TrainedRun r;
  r.nll = test::train_fixed_batch(*ops, model, ids, targets, steps,
                                  [&](int s) { moe.runtime().ctx = RouteContext{5, s, true, B, T, 0}; });
  for (MoeLayer* l : moe.layers()) {
    r.stats.push_back(l->stats());
    r.on_backend = l->plan().on_backend;
    r.theta = l->router().threshold_samples();
  }
  r.params.resize(static_cast<size_t>(model.params().values().numel()));
  ops->to_host(r.params.data(), model.params().values());
  return r;
}

class MoeOnBackend : public ::testing::TestWithParam<BackendCase> {};

TEST_P(MoeOnBackend, TrainsAsRoutingOnTheHostDoes) {
  if (!make_ops(Device::cpu)->routes_on_backend())
    GTEST_SKIP() << "skipped: built without Thrust (the CUDA toolkit's CCCL headers)";
  const BackendCase& c = GetParam();
  const TrainedRun host = train_routing(c, false, 20), dev = train_routing(c, true, 20);
  EXPECT_FALSE(host.on_backend);
  EXPECT_TRUE(dev.on_backend) << c.name << ": routed on the host";
  ASSERT_EQ(host.nll.size(), dev.nll.size());
  // The paths differ in summation order only: a padded plan runs the experts as one
  // batched GEMM where the host's ragged plan loops over experts; 20 Adam steps at
  // lr 1e-2 carry that from 1e-7 to about 1e-6 (as the mpirun equivalence's 1e-5).
  for (size_t s = 0; s < host.nll.size(); ++s)
    EXPECT_NEAR(dev.nll[s], host.nll[s], (s < 10 ? 1e-6 : 1e-5) * host.nll[s]) << c.name << " step " << s;
  ASSERT_EQ(host.params.size(), dev.params.size());
  double diff = 0;
  for (size_t i = 0; i < host.params.size(); ++i) diff = std::max(diff, std::fabs(double(dev.params[i]) - host.params[i]));
  EXPECT_LT(diff, 1e-5) << c.name << ": largest parameter difference after 20 steps";
  ASSERT_EQ(host.stats.size(), dev.stats.size());
  for (size_t l = 0; l < host.stats.size(); ++l) {
    const RouterStats &h = host.stats[l], &d = dev.stats[l];
    EXPECT_EQ(d.tokens_per_expert, h.tokens_per_expert) << c.name;
    EXPECT_EQ(d.dropped, h.dropped) << c.name;
    EXPECT_EQ(d.choices, h.choices) << c.name;
    EXPECT_EQ(d.capacity, h.capacity) << c.name;
    for (int b = 0; b < 5; ++b) EXPECT_EQ(d.histogram[b], h.histogram[b]) << c.name << " bin " << b;
    EXPECT_NEAR(d.aux_weighted, h.aux_weighted, 1e-6 * (1 + h.aux_weighted)) << c.name;
    EXPECT_NEAR(d.balance, h.balance, 1e-6) << c.name;
    EXPECT_NEAR(d.entropy, h.entropy, 1e-6) << c.name;
    EXPECT_NEAR(d.mean_gate, h.mean_gate, 1e-6) << c.name;
    EXPECT_NEAR(d.importance, h.importance, 1e-6 * (1 + h.importance)) << c.name;
    EXPECT_NEAR(d.load, h.load, 1e-6 * (1 + h.load)) << c.name;
  }
  ASSERT_EQ(host.theta.size(), dev.theta.size()) << c.name;
  for (size_t e = 0; e < host.theta.size(); ++e) EXPECT_NEAR(dev.theta[e], host.theta[e], 1e-5) << c.name;
  if (c.router == RouterKind::expert_choice) {
    EXPECT_GT(host.theta.size(), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Routers, MoeOnBackend,
    ::testing::Values(BackendCase{"switch_top1_drops", RouterKind::switch_top1, Arch::decoder, 16, 1.0},
                      BackendCase{"switch_top1_jitter", RouterKind::switch_top1, Arch::decoder, 16, 1.0, 0.05},
                      BackendCase{"switch_top1_one_group", RouterKind::switch_top1, Arch::encoder, 0, 1.5},
                      BackendCase{"gshard_top2", RouterKind::gshard_top2, Arch::decoder, 32, 1.0},
                      BackendCase{"noisy_topk", RouterKind::noisy_topk, Arch::decoder, 16, 1.0},
                      BackendCase{"expert_choice_by_position", RouterKind::expert_choice, Arch::decoder, 0, 1.0},
                      BackendCase{"expert_choice_contiguous", RouterKind::expert_choice, Arch::encoder, 16, 1.0}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace sy
