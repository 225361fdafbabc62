// Properties of the CPU backend beyond the op table: its sums do not depend on the
// number of threads (fixed chunks, added in order), so a run's numbers do not move
// with OMP_NUM_THREADS.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_ops.h"
#include "test_util.h"

namespace sy {
namespace {

TEST(CpuBackend, SumsAreThreadCountIndependent) {
  auto ops = make_cpu_ops();
  auto x = test::to_float(test::random_vec(100003, 14));
  const Tensor t = test::as_tensor(x, {100003});
  ops->set_threads(1);
  const double squares = ops->sum_squares(t), plain = ops->sum(t);
  ops->set_threads(2);
  EXPECT_EQ(squares, ops->sum_squares(t));
  EXPECT_EQ(plain, ops->sum(t));
}

}  // namespace
}  // namespace sy
