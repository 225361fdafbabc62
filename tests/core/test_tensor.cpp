#include <gtest/gtest.h>

#include <cstdlib>

#include "core/process.h"

#include <cstdlib>
#include <cstring>

#include "core/tensor.h"

namespace sy {
namespace {

class HostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    ++live;
    return std::calloc(1, bytes);
  }
  void deallocate(void* p) override {
    --live;
    std::free(p);
  }
  Device device() const override { return Device::cpu; }
  int live = 0;
};

TEST(Tensor, ViewsShareMemoryAndKnowTheirShape) {
  HostAllocator alloc;
  Buffer buf(alloc, 24 * sizeof(float));
  Tensor t = buf.as(DType::f32, {2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.shape_str(), "[2, 3, 4]");
  Tensor row = t.view({4}, 8);
  row.data<float>()[0] = 5.0f;
  EXPECT_EQ(t.data<float>()[8], 5.0f);
  EXPECT_EQ(t.flat().ndim, 1);
}

TEST(Tensor, BuffersAreZeroedAndFreedOnce) {
  HostAllocator alloc;
  {
    Buffer a(alloc, 64);
    Buffer b = std::move(a);
    EXPECT_EQ(alloc.live, 1);
    EXPECT_EQ(static_cast<char*>(b.data())[63], 0);
    Arena arena(alloc);
    arena.make(DType::f64, {3, 3});
    arena.make(DType::i32, {5});
    EXPECT_EQ(arena.bytes(), 9 * 8 + 5 * 4u);
    EXPECT_EQ(alloc.live, 3);
  }
  EXPECT_EQ(alloc.live, 0);
}

TEST(TensorDeathTest, ViewOutsideTheBufferIsABug) {
  HostAllocator alloc;
  Buffer buf(alloc, 16 * sizeof(float));
  Tensor t = buf.as(DType::f32, {16});
  EXPECT_DEATH(t.view({4, 4}, 1), "does not fit");
}

}  // namespace
// The node-local rank picks a rank's GPU: Open MPI, MPICH / Hydra, PMI, SLURM and
// torchrun-style launchers each name it differently.
TEST(Process, LocalRankFromEveryLauncher) {
  const char* vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK",
                        "SLURM_LOCALID", "LOCAL_RANK"};
  for (const char* v : vars) unsetenv(v);
  EXPECT_EQ(local_rank(), 0);
  for (const char* v : vars) {
    setenv(v, "3", 1);
    EXPECT_EQ(local_rank(), 3) << v;
    unsetenv(v);
  }
  setenv("MPI_LOCALRANKID", "x7", 1);  // not a number: ignored
  EXPECT_EQ(local_rank(), 0);
  unsetenv("MPI_LOCALRANKID");
}

}  // namespace sy
