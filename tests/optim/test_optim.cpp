#include <gtest/gtest.h>

#include <cmath>

#include "optim/adam.h"
#include "optim/schedule.h"
#include "test_util.h"

namespace sy {
namespace {

OptimConfig schedule_config(Schedule s) {
  OptimConfig c;
  c.lr = 1.0;
  c.warmup_steps = 10;
  c.schedule = s;
  c.min_lr_ratio = 0.1;
  return c;
}

TEST(Schedule, LinearWarmupThenConstant) {
  const OptimConfig c = schedule_config(Schedule::constant);
  EXPECT_DOUBLE_EQ(learning_rate(c, 0, 100), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(c, 4, 100), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(c, 9, 100), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(c, 99, 100), 1.0);
}

TEST(Schedule, InverseSqrtDecaysAfterWarmup) {
  const OptimConfig c = schedule_config(Schedule::inverse_sqrt);
  EXPECT_DOUBLE_EQ(learning_rate(c, 10, 1000), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(c, 40, 1000), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(c, 1000, 1000), std::sqrt(10.0 / 1000.0));
}

TEST(Schedule, CosineReachesTheFloorAtTheLastStep) {
  const OptimConfig c = schedule_config(Schedule::cosine);
  EXPECT_DOUBLE_EQ(learning_rate(c, 10, 111), 1.0);
  EXPECT_NEAR(learning_rate(c, 60, 111), 0.55, 1e-12);  // halfway: (1 + 0.1) / 2
  EXPECT_NEAR(learning_rate(c, 110, 111), 0.1, 1e-12);
  for (int s = 11; s < 111; ++s) EXPECT_LE(learning_rate(c, s, 111), learning_rate(c, s - 1, 111));
}

TEST(Clipping, GlobalNormOverSeveralTensors) {
  auto ops = make_ops(Device::cpu);
  std::vector<double> a = {3.0, 0.0}, b = {4.0};
  const double n = global_grad_norm(*ops, {test::as_tensor(a, {2}), test::as_tensor(b, {1})});
  EXPECT_DOUBLE_EQ(n, 5.0);
  EXPECT_NEAR(clip_factor(n, 1.0), 0.2, 1e-6);
  EXPECT_EQ(clip_factor(n, 10.0), 1.0);
  EXPECT_EQ(clip_factor(n, 0.0), 1.0);  // clipping off
}

TEST(Adam, MinimisesAQuadraticAndSkipsDecayWhereAsked) {
  auto ops = make_ops(Device::cpu);
  std::vector<double> x = {5.0, -3.0}, gx(2), y = {2.0}, gy = {0.0};
  OptimConfig c;
  c.lr = 0.1;
  c.weight_decay = 0.5;
  Adam adam(*ops, c, {{test::as_tensor(x, {2}), test::as_tensor(gx, {2}), false},
                      {test::as_tensor(y, {1}), test::as_tensor(gy, {1}), true}});
  for (int s = 0; s < 500; ++s) {
    gx = {2 * (x[0] - 1.0), 2 * (x[1] + 2.0)};  // minimum at (1, -2)
    adam.step(c.lr, 1.0);
  }
  EXPECT_NEAR(x[0], 1.0, 1e-2);
  EXPECT_NEAR(x[1], -2.0, 1e-2);
  EXPECT_LT(std::abs(y[0]), 0.05);  // zero gradient: only decoupled decay moved it
  EXPECT_EQ(adam.steps_taken(), 500);
}

}  // namespace
}  // namespace sy
