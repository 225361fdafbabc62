// The MPI communicator, run by ctest alone (a world of one) and under a real
// `mpirun -np 2` and `-np 4`: the world is the launcher's, the all-reduce sums in
// rank order (the same bits as a local sum in rank order), the all-to-all moves
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

TEST(MpiCommunicator, AllReduceSumsInRankOrderBitwise) {
  const auto world = make_world_communicator();
  const int P = world->size(), r = world->rank();
  const int64_t n = 777;
  std::vector<float> x(n), expect(n);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = part(r, i);
    float s = part(0, i);
    for (int q = 1; q < P; ++q) s += part(q, i);
    expect[i] = s;
  }
  world->all_reduce_sum(test::as_tensor(x, {n}));
  EXPECT_EQ(x, expect);
  std::vector<double> d = {1.0 * (r + 1), 0.5};
  world->all_reduce_sum(d);
  EXPECT_EQ(d[0], P * (P + 1) / 2.0);
  EXPECT_EQ(d[1], 0.5 * P);
  EXPECT_EQ(world->all_reduce_max(10 * r), 10 * (P - 1));
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
