// The MPI communicator, run by ctest alone (a world of one) and under a real
// `mpirun -np 2` and `-np 4`: the world is the launcher's, the reductions sum (the
// same bits on every rank and every time), the all-to-all moves
// uneven row counts (some pairs exchange nothing), broadcast and split work.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/process.h"
#include "parallel/communicator.h"
#include "test_util.h"

namespace sy {
namespace {

// The size the launcher announced (1 when started without one).
int launcher_size() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* s = std::getenv(v)) return std::atoi(s);
  return 1;
}

// Rank r's contribution to element i: distinct per rank and element, with a spread
// of magnitudes so that the summation order shows in the bits.
float part(int r, int64_t i) {
  return static_cast<float>(test::random_vec(1, 1000 * r + i)[0] * std::pow(10.0, (r + i) % 5));
}

TEST(MpiCommunicator, WorldIsTheLaunchersWorld) {
  const auto world = make_world_communicator();
  EXPECT_EQ(world->size(), launcher_size());
  EXPECT_EQ(world->size(), world_size());
  EXPECT_EQ(world->rank(), world_rank());
  EXPECT_GE(world->rank(), 0);
  EXPECT_LT(world->rank(), world->size());
}

// What every rank received, gathered to every rank (bitwise comparisons across ranks).
std::vector<std::vector<float>> everyones(Communicator& c, const std::vector<float>& mine) {
  std::vector<std::vector<float>> all;
  for (int q = 0; q < c.size(); ++q) {
    std::vector<float> b = mine;
    c.broadcast(test::as_tensor(b, {static_cast<int64_t>(b.size())}), q);
    all.push_back(b);
  }
  return all;
}

// The local sum in rank order, in double (the reference the reduction is close to).
std::vector<double> exact_sum(int P, int64_t n) {
  std::vector<double> s(n, 0.0);
  for (int q = 0; q < P; ++q)
    for (int64_t i = 0; i < n; ++i) s[i] += part(q, i);
  return s;
}

TEST(Slices, CoverTheBufferInRankOrderWithoutGaps) {
  for (int64_t n : {0, 1, 5, 7, 64, 1001})
    for (int P : {1, 2, 3, 4, 8}) {
      int64_t at = 0;
      for (int r = 0; r < P; ++r) {
        const Slice s = slice_of(n, P, r);
        EXPECT_EQ(s.begin, at) << n << " " << P << " " << r;
        EXPECT_GE(s.size, n / P);
        EXPECT_LE(s.size, n / P + 1);
        at += s.size;
      }
      EXPECT_EQ(at, n);
    }
}

// Traffic independent of the rank count means the sum is no longer a local sum in
// rank order; what stays: the result is the sum (to rounding), every rank holds
// the same bits, and the same inputs give the same bits again.
TEST(MpiCommunicator, AllReduceSumIsTheSameOnEveryRankAndRepeats) {
  const auto world = make_world_communicator();
  const int P = world->size(), r = world->rank();
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{777}, int64_t{100003}}) {
    std::vector<float> x(n), again;
    for (int64_t i = 0; i < n; ++i) x[i] = part(r, i);
    again = x;
    world->all_reduce_sum(test::as_tensor(x, {n}));
    const std::vector<double> expect = exact_sum(P, n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_NEAR(x[i], expect[i], 1e-5 * (std::abs(expect[i]) + 1e4)) << "element " << i << " of " << n;
    for (const std::vector<float>& other : everyones(*world, x)) EXPECT_EQ(other, x) << n;
    world->all_reduce_sum(test::as_tensor(again, {n}));
    EXPECT_EQ(again, x) << "the same inputs gave other bits, n = " << n;
  }
  std::vector<double> d = {1.0 * (r + 1), 0.5};
  world->all_reduce_sum(d);
  EXPECT_EQ(d[0], P * (P + 1) / 2.0);
  EXPECT_EQ(d[1], 0.5 * P);
  EXPECT_EQ(world->all_reduce_max(10 * r), 10 * (P - 1));
}

// ZeRO's halves: after the reduce-scatter this rank's slice holds the sum; the
// all-gather then brings every owner's slice, bit for bit, everywhere.
TEST(MpiCommunicator, ReduceScatterThenAllGatherIsTheAllReduce) {
  const auto world = make_world_communicator();
  const int P = world->size(), r = world->rank();
  const int64_t n = 1234;
  std::vector<float> x(n), y;
  for (int64_t i = 0; i < n; ++i) x[i] = part(r, i);
  y = x;
  const Slice mine = slice_of(n, P, r);
  std::vector<float> scratch(static_cast<size_t>(mine.size + 1));
  world->start_reduce_scatter_sum(test::as_tensor(x, {n}), test::as_tensor(scratch, {mine.size + 1}))->wait();
  world->all_reduce_sum(test::as_tensor(y, {n}));  // (another algorithm: equal to rounding)
  for (int64_t i = mine.begin; i < mine.begin + mine.size; ++i)
    ASSERT_NEAR(x[i], y[i], 1e-5 * (std::abs(y[i]) + 1e4)) << i;
  const std::vector<float> reduced = x;
  // Poison what this rank does not own: the all-gather must overwrite all of it.
  for (int64_t i = 0; i < n; ++i)
    if (i < mine.begin || i >= mine.begin + mine.size) x[i] = -7.0f;
  auto gather = world->start_all_gather(test::as_tensor(x, {n}));
  while (!gather->test()) {
  }
  for (int q = 0; q < P; ++q) {  // every slice now as its owner reduced it
    const Slice theirs = slice_of(n, P, q);
    std::vector<float> owner = reduced;
    world->broadcast(test::as_tensor(owner, {n}), q);
    for (int64_t i = theirs.begin; i < theirs.begin + theirs.size; ++i) ASSERT_EQ(x[i], owner[i]) << q << " " << i;
  }
}

// Buckets overlap: reductions on two communicators in flight at once, driven by
// test(), finished in another order than started.
TEST(MpiCommunicator, SeveralReductionsInFlightAtOnce) {
  const auto world = make_world_communicator();
  const int P = world->size(), r = world->rank();
  const auto half = world->split(r % 2, r);
  const int64_t n = 5000;
  std::vector<float> a(n), b(n), c(n), sc(n);
  for (int64_t i = 0; i < n; ++i) a[i] = b[i] = c[i] = part(r, i);
  auto pa = world->start_all_reduce_sum(test::as_tensor(a, {n}));
  auto pb = half->start_all_reduce_sum(test::as_tensor(b, {n}));
  auto pc = world->start_reduce_scatter_sum(test::as_tensor(c, {n}), test::as_tensor(sc, {n}));
  pa->test();
  pc->test();
  pb->wait();
  pc->wait();
  pa->wait();
  const std::vector<double> all = exact_sum(P, n);
  const Slice mine = slice_of(n, P, r);
  for (int64_t i = mine.begin; i < mine.begin + mine.size; ++i)
    ASSERT_NEAR(c[i], all[i], 1e-5 * (std::abs(all[i]) + 1e4)) << i;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_NEAR(a[i], all[i], 1e-5 * (std::abs(all[i]) + 1e4)) << i;
    double mine = 0;
    for (int q = r % 2; q < P; q += 2) mine += part(q, i);
    ASSERT_NEAR(b[i], mine, 1e-5 * (std::abs(mine) + 1e4)) << i;
  }
}

TEST(MpiCommunicator, AllToAllVMovesUnevenRows) {
  const auto world = make_world_communicator();
  const int P = world->size(), r = world->rank();
  const int64_t row = 3;
  // Rank s sends (s + j) % 3 rows to rank j; row k of that message holds s·100 + j·10 + k.
  std::vector<int64_t> send_rows(P), recv_rows(P);
  for (int j = 0; j < P; ++j) {
    send_rows[j] = (r + j) % 3;
    recv_rows[j] = (j + r) % 3;
  }
  std::vector<float> send, expect;
  for (int j = 0; j < P; ++j)
    for (int64_t k = 0; k < send_rows[j]; ++k)
      for (int64_t c = 0; c < row; ++c) send.push_back(r * 100.0f + j * 10.0f + k + c / 8.0f);
  for (int s = 0; s < P; ++s)
    for (int64_t k = 0; k < recv_rows[s]; ++k)
      for (int64_t c = 0; c < row; ++c) expect.push_back(s * 100.0f + r * 10.0f + k + c / 8.0f);
  std::vector<float> recv(expect.size() + 1, -1.0f);  // one spare element stays untouched
  send.push_back(0.0f);                                // never empty
  world->all_to_all_v(test::as_tensor(send, {static_cast<int64_t>(send.size())}), send_rows,
                      test::as_tensor(recv, {static_cast<int64_t>(recv.size())}), recv_rows, row);
  EXPECT_EQ(std::vector<float>(recv.begin(), recv.end() - 1), expect);
  EXPECT_EQ(recv.back(), -1.0f);
  std::vector<int64_t> counts(P), got;
  for (int j = 0; j < P; ++j) counts[j] = 10 * r + j;
  world->all_to_all(counts, got);
  for (int j = 0; j < P; ++j) EXPECT_EQ(got[j], 10 * j + r);
}

TEST(MpiCommunicator, BroadcastAndSplit) {
  const auto world = make_world_communicator();
  const int P = world->size(), r = world->rank();
  std::vector<int32_t> b = {r, 7 * r, -r};
  world->broadcast(test::as_tensor(b, {3}), 0);
  EXPECT_EQ(b, (std::vector<int32_t>{0, 0, 0}));
  // Two groups, even and odd ranks, ordered by rank.
  const auto group = world->split(r % 2, r);
  EXPECT_EQ(group->size(), (P + 1 - r % 2) / 2);
  EXPECT_EQ(group->rank(), r / 2);
  std::vector<double> v = {static_cast<double>(r)};
  group->all_reduce_sum(v);
  double expect = 0;
  for (int q = r % 2; q < P; q += 2) expect += q;
  EXPECT_EQ(v[0], expect);
}

}  // namespace
}  // namespace sy
