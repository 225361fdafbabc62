// The report over synthetic runs whose answers are known: loading a sweep,
// per-arm statistics, steps to target, the 2σ rule in the text.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/errors.h"
#include "study/report.h"

namespace sy {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sy_report_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "base.yaml")
        << "model: {vocab_size: 64, d_model: 32, n_layers: 2, n_heads: 2, d_ff: 64, max_seq: 16}\n"
           "data: {synthetic_tokens: 8192}\n"
           "train: {steps: 20, batch_size: 2, seq_len: 16, eval_every: 10}\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A run that evaluated at steps 10 and 20 (ppl `mid`, then `final`), or, when
  // `last_step` < 20, stopped there.
  void add_run(const std::string& arm, int seed, const std::vector<std::string>& sets, double mid, double final,
               int last_step = 20) {
    const std::string rel = arm + "/seed_" + std::to_string(seed);
    const fs::path run = dir_ / "sweep" / rel;
    fs::create_directories(run);
    std::vector<std::string> o = sets;
    o.push_back("seed=" + std::to_string(seed));
    std::ofstream(run / "config.yaml") << to_yaml(load_config((dir_ / "base.yaml").string(), o));
    std::ofstream m(run / "metrics.jsonl");
    for (int step = 1; step <= last_step; ++step) {
      json j{{"step", step - 1}, {"nll", 4.0}, {"tokens_per_s", step == 1 ? 1.0 : 1000.0}};
      if (!sets.empty())
        j["moe"] = json::array({json{{"dropped_fraction", 0.25}, {"max_over_mean_load", 1.5},
                                     {"experts_per_token", {10, 20, 30, 20, 20}}}});
      if (step % 10 == 0) {
        j["val_ppl"] = step == 10 ? mid : final;
        j["val_nll"] = std::log(step == 10 ? mid : final);
        if (arm == "ec") {
          j["val_ppl_groups"] = j["val_ppl"];
          j["val_ppl_threshold"] = j["val_ppl"].get<double>() + 1;
        }
      }
      m << j.dump() << "\n";
    }
    runs_.push_back({{"arm", arm}, {"seed", seed}, {"dir", rel}, {"status", "finished"}});
  }
  void write_sweep() {
    std::ofstream(dir_ / "sweep" / "sweep.json") << json{{"target_arm", "gshard_top2"}, {"runs", runs_}}.dump();
  }
  fs::path dir_;
  json runs_ = json::array();
};

const std::vector<std::string> kGshard = {"moe.num_experts=4", "moe.router=gshard_top2"};
const std::vector<std::string> kEc = {"moe.num_experts=4", "moe.router=expert_choice"};

TEST_F(ReportTest, ArmsTargetAndTheTwoSigmaRule) {
  for (int s : {1, 2, 3}) {
    add_run("gshard_top2", s, kGshard, 150, 99 + s);   // final 101 ± 1
    add_run("ec", s, kEc, 100, 89 + s);                // final 91 ± 1: reaches 101 at the first evaluation
    add_run("dense", s, {}, 160, 100.5 + s);           // final 102.5 ± 1: +1.5 < 2σ
  }
  add_run("ec", 4, kEc, 100, 90, 9);  // stopped early: left out
  write_sweep();

  const ReportInput in = load_runs({(dir_ / "sweep").string()});
  EXPECT_EQ(in.target_arm, "gshard_top2");
  ASSERT_EQ(in.runs.size(), 10u);
  const double target = target_perplexity(in);
  EXPECT_DOUBLE_EQ(target, 101);
  const std::vector<ArmSummary> arms = summarise(in, target);
  ASSERT_EQ(arms.size(), 3u);
  const ArmSummary& g = arms[0];
  const ArmSummary& ec = arms[1];
  EXPECT_EQ(ec.name, "ec");
  EXPECT_EQ(ec.runs.size(), 3u);  // the unfinished seed is not counted
  EXPECT_DOUBLE_EQ(ec.final_ppl.mean, 91);
  EXPECT_NEAR(ec.final_ppl.std, 1, 1e-12);
  EXPECT_DOUBLE_EQ(ec.final_threshold.mean, 92);
  EXPECT_EQ(ec.to_target, (std::vector<double>{10, 10, 10}));
  // gshard: 150 → 99+s at steps 10 → 20; seed 1 reaches 101 at 10 + 10·49/50, seed 2 at 20, seed 3 never
  ASSERT_EQ(g.to_target.size(), 3u);
  EXPECT_DOUBLE_EQ(g.to_target[0], 19.8);
  EXPECT_DOUBLE_EQ(g.to_target[1], 20);
  EXPECT_DOUBLE_EQ(g.to_target[2], -1);
  EXPECT_TRUE(ec.expert_choice);
  EXPECT_TRUE(g.token_choice);
  EXPECT_DOUBLE_EQ(g.dropped.mean, 0.25);
  EXPECT_DOUBLE_EQ(ec.tokens_per_s.mean, 1000);  // the first window and evaluation windows excluded
  EXPECT_DOUBLE_EQ(ec.step_ms.mean, 32.0);       // 2 × 16 tokens at 1000 tokens/s
  EXPECT_DOUBLE_EQ(ec.experts_per_token[2], 0.3);
  EXPECT_EQ(ec.group_tokens, 2);  // by position in a decoder: the micro-batch's 2 rows
  EXPECT_NEAR(ec.random_router[0], std::pow(0.5, 4), 1e-12);  // E = 4, C = ⌈2·2/4⌉ = 1 of 2

  const std::string md = report_markdown(in, arms, target, true);
  for (const char* want : {"| ec | 3 | 91.00 ± 1.00 | **-10.00: better** (2σ = 2.00) | **-10.00 ± 0.00 (3 seeds): better** |",
                           "| dense | 3 | 102.50 ± 1.00 | +1.50: not distinguishable (2σ = 2.00) | "
                           "**+1.50 ± 0.00 (3 seeds): worse** |",
                           "| ec | 3/3 | 10 ± 0 | 0.50 |", "| gshard_top2 | 2/3 | 20 ± 0 | 0.99 |",
                           "unfinished, left out of every table and plot: ec seed 4",
                           "gshard_top2 > ec", "ec < dense", "median 1.00 over 3 arms (from 1.00 to 1.00)", "| arm | seed 1 | seed 2 | seed 3 |\n",
                           "| ec | 90.0 | 91.0 | 92.0 |\n", "![validation perplexity](val_ppl.png)"})
    EXPECT_NE(md.find(want), std::string::npos) << "missing: " << want << "\n" << md;
  EXPECT_EQ(md.find("gshard_top2 < dense"), std::string::npos) << md;
}

TEST_F(ReportTest, ADirectoryWithoutRunsIsAnError) {
  fs::create_directories(dir_ / "empty");
  EXPECT_THROW(load_runs({(dir_ / "empty").string()}), Error);
}

}  // namespace
}  // namespace sy
