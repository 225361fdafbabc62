#include <gtest/gtest.h>

#include <cmath>

#include "backend/ops.h"
#include "test_util.h"

namespace sy {
namespace {

// p = softmax([ln 1, ln 2, ln 5]) = [1/8, 2/8, 5/8], target 2, ε = 0.1:
// NLL = -ln(5/8) = 0.4700036292; mean_v(-ln p_v) = (ln 8 + ln 4 + ln 1.6)/3;
// loss = 0.9·NLL + 0.1·mean = 0.5541945841 (computed by hand, not by the code under test).
TEST(LabelSmoothedLoss, MatchesAHandComputedValue) {
  auto ops = make_ops(Device::cpu);
  std::vector<double> z = {0.0, std::log(2.0), std::log(5.0)};
  std::vector<int32_t> y = {2};
  std::vector<double> loss(1), nll(1), lse(1);
  ops->cross_entropy_forward(test::as_tensor(loss, {1}), test::as_tensor(nll, {1}),
                             test::as_tensor(lse, {1}), test::as_tensor(z, {1, 3}),
                             test::as_tensor(y, {1}), 0.1);
  EXPECT_NEAR(nll[0], 0.4700036292457356, 1e-12);
  EXPECT_NEAR(loss[0], 0.5541945840560107, 1e-12);
  EXPECT_NEAR(lse[0], std::log(8.0), 1e-12);
  // ε = 0 is plain cross-entropy.
  ops->cross_entropy_forward(test::as_tensor(loss, {1}), test::as_tensor(nll, {1}),
                             test::as_tensor(lse, {1}), test::as_tensor(z, {1, 3}),
                             test::as_tensor(y, {1}), 0.0);
  EXPECT_NEAR(loss[0], nll[0], 1e-15);
}

}  // namespace
}  // namespace sy
