// The memory estimate that refuses configs too big for the machine: exact for the
// parameters, and within a factor of the activations the model really allocates,
// so that it never refuses a config that fits (and catches the absurd ones).
#include <gtest/gtest.h>

#include "core/errors.h"
#include "train/memory.h"
#include "train/tiny_config.h"
#include "train/trainer.h"

namespace sy {
namespace {

void expect_close_to_real(const Config& cfg, const char* what) {
  auto ops = make_ops(Device::cpu);
  Trainer trainer(cfg, *ops);
  const MemoryNeed need = estimate_memory(cfg, 1);
  EXPECT_EQ(static_cast<double>(need.params), static_cast<double>(trainer.model().params().numel()))
      << what << ": parameter count";
  const double real = static_cast<double>(trainer.model().activation_bytes());
  const double est = static_cast<double>(need.activation_bytes);
  EXPECT_GT(est, 0.5 * real) << what << ": activations underestimated (real " << real << ")";
  EXPECT_LT(est, 4.0 * real) << what << ": activations overestimated (real " << real << ")";
}

TEST(MemoryEstimate, MatchesWhatTheModelAllocates) {
  Config cfg = test::tiny_config();
  expect_close_to_real(cfg, "dense decoder");
  cfg.model.tie_embeddings = false;
  cfg.model.positions = PosKind::sinusoidal;
  cfg.model.norm = NormKind::rmsnorm;
  expect_close_to_real(cfg, "untied, sinusoidal, rmsnorm");
  for (RouterKind r : {RouterKind::switch_top1, RouterKind::gshard_top2, RouterKind::noisy_topk,
                       RouterKind::expert_choice}) {
    Config moe = test::tiny_config();
    moe.moe.num_experts = 4;
    moe.moe.router = r;
    moe.moe.expert_kind = r == RouterKind::switch_top1 ? ExpertKind::ffn : ExpertKind::glu;
    expect_close_to_real(moe, router_name(r));
  }
}

TEST(MemoryEstimate, AbsurdSizesAreBadInputNotOverflow) {
  Config cfg = test::tiny_config();
  cfg.train.batch_size = int64_t{1} << 40;  // batch × seq × vocab overflows int64
  try {
    check_memory(cfg, 1, uint64_t{64} << 30, "machine");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input);
    EXPECT_NE(std::string(e.what()).find("train.batch_size"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(check_memory(test::tiny_config(), 1, uint64_t{64} << 30, "machine"));
}

}  // namespace
}  // namespace sy
