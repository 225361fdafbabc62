// The NCCL communicator against the MPI one, under mpirun: the same all-to-all
// (uneven counts, a peer that gets nothing), all-reduce and broadcast must give the
// same bits. NCCL wants one GPU per rank: with fewer, every test reports
// "skipped: no GPU". The world is the launcher's: test_main initialises MPI under
// mpirun, so two ranks build one two-rank communicator.
#include <gtest/gtest.h>

#include <cmath>

#include <memory>
#include <vector>

#include "backend/cuda/cuda_ops.h"
#include "backend/gpu_test.h"
#include "parallel/communicator.h"
#include "parallel/nccl/nccl_communicator.h"
#include "test_util.h"

namespace sy {
namespace {

class NcclMatchesMpi : public ::testing::Test {
 protected:
  void SetUp() override {
    mpi = make_world_communicator();
    SY_REQUIRE_GPUS(mpi->size());  // one GPU per rank
    gpu = make_cuda_ops();  // picks this rank's GPU by local rank
    nccl = make_nccl_communicator(make_world_communicator());
  }
  Tensor device_copy(std::vector<float>& host) {
    buffers.emplace_back(*gpu, std::max<size_t>(host.size() * sizeof(float), 4));
    Tensor d = buffers.back().as(DType::f32, {static_cast<int64_t>(host.size())});
    if (!host.empty()) gpu->from_host(d, host.data());
    return d;
  }
  std::vector<float> host_of(const Tensor& d) {
    std::vector<float> v(static_cast<size_t>(d.numel()));
    gpu->to_host(v.data(), d);
    return v;
  }
  std::unique_ptr<Communicator> mpi, nccl;
  std::unique_ptr<Ops> gpu;
  std::vector<Buffer> buffers;
};

TEST_F(NcclMatchesMpi, AllToAllV) {
  const int P = mpi->size(), r = mpi->rank();
  const int64_t row = 5;
  // Rank r sends (r + j) % 3 rows to rank j: some pairs exchange nothing.
  std::vector<int64_t> send_rows(P), recv_rows(P);
  for (int j = 0; j < P; ++j) {
    send_rows[j] = (r + j) % 3;
    recv_rows[j] = (j + r) % 3;
  }
  int64_t ns = 0, nr = 0;
  for (int j = 0; j < P; ++j) ns += send_rows[j], nr += recv_rows[j];
  std::vector<float> send = test::to_float(test::random_vec(ns * row, 100 + r));
  std::vector<float> recv_mpi(static_cast<size_t>(nr * row), -1.0f), recv_dev = recv_mpi;
  const Tensor d_send = device_copy(send), d_recv = device_copy(recv_dev);
  mpi->all_to_all_v(test::as_tensor(send, {ns * row}), send_rows,
                    test::as_tensor(recv_mpi, {nr * row}), recv_rows, row);
  nccl->all_to_all_v(d_send, send_rows, d_recv, recv_rows, row);
  EXPECT_EQ(host_of(d_recv), recv_mpi);
}

TEST_F(NcclMatchesMpi, ReductionsAndBroadcast) {
  const int r = mpi->rank();
  std::vector<float> x = test::to_float(test::random_vec(1001, 200 + r, 1e3));
  std::vector<float> x_dev = x;
  const Tensor d = device_copy(x_dev);
  std::vector<float> local = x;
  mpi->all_reduce_sum(test::as_tensor(x, {1001}));
  nccl->all_reduce_sum(d);
  // Two libraries, two summation orders: equal to rounding, and NCCL's result the
  // same on every rank (rank 0's broadcast) and again for the same inputs.
  const std::vector<float> got = host_of(d);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(got[i], x[i], 1e-5 * (std::abs(x[i]) + 1e3)) << i;
  std::vector<float> r0 = got;
  const Tensor d0 = device_copy(r0);
  nccl->broadcast(d0, 0);
  EXPECT_EQ(host_of(d0), got);
  const Tensor d2 = device_copy(local);
  nccl->all_reduce_sum(d2);
  EXPECT_EQ(host_of(d2), got);
  // ZeRO's halves through NCCL: reduce-scatter then all-gather gives the all-reduce.
  std::vector<float> y = test::to_float(test::random_vec(1001, 200 + r, 1e3));
  const Tensor dy = device_copy(y);
  nccl->start_reduce_scatter_sum(dy, Tensor{})->wait();
  nccl->start_all_gather(dy)->wait();
  const std::vector<float> rs = host_of(dy);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(rs[i], x[i], 1e-5 * (std::abs(x[i]) + 1e3)) << i;
  std::vector<float> b = test::to_float(test::random_vec(77, 300 + r));
  const Tensor db = device_copy(b);
  nccl->broadcast(db, 0);
  EXPECT_EQ(host_of(db), test::to_float(test::random_vec(77, 300)));
}

}  // namespace
}  // namespace sy
