// The step breakdown of `switchyard bench`: with profiling on, a real MoE training
// step charges time to attention, expert GEMMs, routing and the optimizer, brackets
// each scope with device synchronisations, and never counts more than the step took;
// with profiling off nothing is recorded.
#include <gtest/gtest.h>

#include "core/phases.h"
#include "core/timer.h"
#include "train/tiny_config.h"
#include "train/trainer.h"

namespace sy {
namespace {

Config tiny_moe() {
  Config cfg = test::tiny_config();
  cfg.moe.num_experts = 4;
  cfg.moe.router = RouterKind::expert_choice;
  return cfg;
}

TEST(StepBreakdown, ChargesEveryPhaseOfAnMoeStepAndNoMoreThanTheStep) {
  const Config cfg = tiny_moe();
  auto ops = make_ops(Device::cpu);
  Trainer trainer(cfg, *ops);
  trainer.train_step(0);
  EXPECT_FALSE(phase_profiling());
  trainer.train_step(1);
  for (double s : phase_totals().seconds) EXPECT_EQ(s, 0.0) << "recorded while off";

  int syncs = 0;
  set_phase_profiling([&] { ++syncs; });
  Timer timer;
  trainer.train_step(2);
  const double wall = timer.seconds();
  const PhaseTotals t = phase_totals();
  set_phase_profiling(nullptr);

  for (Phase p : {Phase::attention, Phase::expert_gemm, Phase::routing, Phase::optimizer})
    EXPECT_GT(t.seconds[static_cast<size_t>(p)], 0.0) << phase_name(p);
  double sum = 0;
  for (double s : t.seconds) sum += s;
  EXPECT_LE(sum, wall);
  EXPECT_GT(syncs, 0);
  EXPECT_EQ(syncs % 2, 0) << "every scope synchronises when it opens and when it closes";
  EXPECT_FALSE(phase_profiling());
}

}  // namespace
}  // namespace sy
