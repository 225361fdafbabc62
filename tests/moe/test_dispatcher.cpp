// The token dispatcher alone (its expert-parallel path is checked by the mpirun
// equivalence tests): a hand-made plan, "experts" that double their input, and the
// exact rows, combine sums and gate gradients that follow.
#include <gtest/gtest.h>

#include <vector>

#include "moe/dispatcher.h"

namespace sy {
namespace {

TEST(TokenDispatcher, RoutesRowsToExpertsAndCombinesThemInSlotOrder) {
  auto ops = make_ops(Device::cpu);
  ParamStore params(*ops, DType::f64);
  LayerEnv env{*ops, params, DType::f64};
  const int64_t N = 3, C = 2;
  TokenDispatcher d(env, C, 2, ExpertShard{});
  Arena arena(*ops);
  d.allocate(arena, N, 6);
  // Expert 0 takes tokens 2 and 0 (gates 0.5, 0.25); expert 1 takes token 2 (gate 1).
  RoutePlan plan;
  plan.expert_begin = {0, 2, 3};
  plan.slot_token = {2, 0, 2};
  plan.slot_gate = {0.5, 0.25, 1.0};
  Tensor x = arena.make(DType::f64, {N, C}), out = arena.make(DType::f64, {N, C});
  const std::vector<double> xv = {1, 2, 3, 4, 5, 6};
  ops->from_host(x, xv.data());
  ops->fill(out, 0.0);
  d.dispatch(x, plan);
  EXPECT_EQ(d.expert_begin(), plan.expert_begin);
  std::vector<double> in(6);
  ops->to_host(in.data(), d.expert_input());
  EXPECT_EQ(in, (std::vector<double>{5, 6, 1, 2, 5, 6}));  // rows of tokens 2, 0, 2
  ops->copy(d.expert_output(), d.expert_input());  // the "experts": y = 2·x
  ops->scale(d.expert_output(), 2.0);
  d.combine(out);
  std::vector<double> y(6);
  ops->to_host(y.data(), out);
  // token 0: 0.25·2·x0; token 1: nothing; token 2: (0.5 + 1)·2·x2
  EXPECT_EQ(y, (std::vector<double>{0.5, 1, 0, 0, 15, 18}));

  Tensor dout = arena.make(DType::f64, {N, C}), dx = arena.make(DType::f64, {N, C});
  const std::vector<double> g = {1, -1, 7, 7, 2, 3};
  ops->from_host(dout, g.data());
  std::vector<double> dgate;
  d.dispatch_grad(dout, dgate);
  // dgate[slot] = ⟨dout_t, y_slot⟩: slot 0 (token 2): 2·(2·5 + 3·6); slot 1 (token 0): 2·(1 − 2); slot 2 as 0
  EXPECT_EQ(dgate, (std::vector<double>{56, -2, 56}));
  std::vector<double> dy(6);
  ops->to_host(dy.data(), d.expert_output_grad());
  EXPECT_EQ(dy, (std::vector<double>{1, 1.5, 0.25, -0.25, 2, 3}));  // gate · dout_t
  ops->copy(d.expert_input_grad(), d.expert_output_grad());  // the experts' input gradient: identity
  d.combine_grad(dx);
  std::vector<double> dxv(6);
  ops->to_host(dxv.data(), dx);
  EXPECT_EQ(dxv, (std::vector<double>{0.25, -0.25, 0, 0, 3, 4.5}));
}

}  // namespace
}  // namespace sy
