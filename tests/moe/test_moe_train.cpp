// A small MoE model of each router learns: its loss on a fixed token stream falls
// well below the start within a bounded number of steps.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sy
