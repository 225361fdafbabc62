// After the first step, a training step allocates no memory: every buffer was
// made in setup. Counted by replacing the global operator new in this binary.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "train/tiny_config.h"
#include "train/trainer.h"

namespace {
std::atomic<long> g_allocations{0};
}

void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace sy {
namespace {

TEST(TrainStep, AllocatesNothingAfterTheFirstStep) {
  for (Arch arch : {Arch::decoder, Arch::encoder}) {
    const Config cfg = test::tiny_config(arch);
    auto ops = make_ops(Device::cpu);
    const long at_start = g_allocations.load();
    Trainer trainer(cfg, *ops);
    ASSERT_GT(g_allocations.load(), at_start) << "the counter sees setup's allocations";
    trainer.train_step(0);
    const long before = g_allocations.load();
    for (int64_t step = 1; step < 4; ++step) trainer.train_step(step);
    EXPECT_EQ(g_allocations.load() - before, 0) << "allocations in steps 1..3 (" << (arch == Arch::decoder ? "decoder" : "encoder") << ")";
  }
}

}  // namespace
}  // namespace sy
