// Sweep files: expansion into runs, the checks made before anything runs, and
// the status that decides what a restarted sweep skips.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "config/config.h"
#include "core/errors.h"
#include "study/sweep.h"

namespace sy {
namespace {
namespace fs = std::filesystem;

class SweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fs::path("sy_sweep_" + std::to_string(::getpid()) + "_" +
                                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    write("base.yaml",
          "model: {vocab_size: 64, d_model: 32, n_layers: 2, n_heads: 2, d_ff: 64, max_seq: 16}\n"
          "data: {synthetic_tokens: 8192}\n"
          "train: {steps: 20, batch_size: 2, seq_len: 16, eval_every: 0}\n");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p) << text;
    return p;
  }
  // A sweep file with the given arms (YAML list items) and sweep-level extras.
  std::string sweep(const std::string& arms, const std::string& extra = "") {
    return write("sweep.yaml", "base: base.yaml\ndir: " + (dir_ / "out").string() +
                                   "\nseeds: [3, 5, 7]\n" + extra + "arms:\n" + arms);
  }
  // The message load_sweep throws (an empty string when it does not).
  static std::string error_of(const std::string& file) {
    try {
      load_sweep(file);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::bad_input);
      return e.what();
    }
    return "";
  }
  fs::path dir_;
};

const std::string kTwoArms =
    "  - name: switch\n    set: {moe.num_experts: 4, moe.router: switch_top1, moe.capacity_factor: 1.25}\n"
    "  - name: ec\n    seeds: [5]\n    set: {moe.num_experts: 4, moe.router: expert_choice}\n";

TEST_F(SweepTest, ExpandsArmsTimesSeedsSeedMajorWithOverridesApplied) {
  const SweepSpec spec = load_sweep(sweep(kTwoArms, "set: {train.steps: 12}\n"));
  EXPECT_EQ(spec.base, (dir_ / "base.yaml").string());  // relative to the sweep file
  const std::vector<SweepRun> runs = expand_sweep(spec);
  ASSERT_EQ(runs.size(), 4u);  // switch × {3, 5, 7} + ec × {5}
  const std::vector<std::pair<std::string, int64_t>> order = {{"switch", 3}, {"switch", 5}, {"ec", 5}, {"switch", 7}};
  std::set<std::string> dirs;
  for (size_t i = 0; i < runs.size(); ++i) {
    EXPECT_EQ(runs[i].arm, order[i].first);
    EXPECT_EQ(runs[i].seed, order[i].second);
    dirs.insert(runs[i].dir);
    const Config c = load_config(spec.base, runs[i].overrides);
    EXPECT_EQ(c.seed, static_cast<uint64_t>(runs[i].seed));
    EXPECT_EQ(c.run.dir, runs[i].dir);
    EXPECT_EQ(c.train.steps, 12);  // the sweep's own `set`
    EXPECT_EQ(c.moe.num_experts, 4);
    EXPECT_EQ(c.moe.router, runs[i].arm == "ec" ? RouterKind::expert_choice : RouterKind::switch_top1);
    if (runs[i].arm == "switch") {
      EXPECT_DOUBLE_EQ(c.moe.capacity_factor, 1.25);
    }
  }
  EXPECT_EQ(dirs.size(), runs.size());
  EXPECT_EQ(runs[0].dir, (dir_ / "out" / "switch" / "seed_3").string());
}

TEST_F(SweepTest, ArmsFromAnotherSweepFile) {
  sweep(kTwoArms, "target_arm: ec\n");
  write("bigger.yaml", "model: {vocab_size: 64, d_model: 64, n_layers: 2, n_heads: 2, d_ff: 64, max_seq: 16}\n"
                       "data: {synthetic_tokens: 8192}\ntrain: {steps: 20, batch_size: 2, seq_len: 16}\n");
  const std::string other = write("gpu.yaml", "base: bigger.yaml\ndir: " + (dir_ / "gpu").string() +
                                                  "\narms_from: sweep.yaml\n");
  const SweepSpec spec = load_sweep(other);
  ASSERT_EQ(spec.arms.size(), 2u);
  EXPECT_EQ(spec.arms[1].name, "ec");
  EXPECT_EQ(spec.arms[0].seeds, (std::vector<int64_t>{3, 5, 7}));
  EXPECT_EQ(spec.target_arm, "ec");
  EXPECT_EQ(load_config(spec.base, expand_sweep(spec)[0].overrides).model.d_model, 64);
}

TEST_F(SweepTest, RefusesArmsThatChangeTheDataOrder) {
  const std::string msg = error_of(sweep("  - name: a\n    set: {}\n  - name: b\n    set: {train.batch_size: 4}\n"));
  EXPECT_NE(msg.find("arm 'b' changes the data order of arm 'a'"), std::string::npos) << msg;
}

TEST_F(SweepTest, ReportsEveryProblemAtOnceWithLines) {
  const std::string msg = error_of(sweep(
      "  - name: a\n    set: {seed: 4}\n"
      "  - name: a\n    sets: {}\n"
      "  - name: bad/name\n"
      "  - name: c\n    set: {model.n_headz: 2}\n",
      "target_arm: nope\nrepeat: 2\n"));
  // The arms' config errors come in the same report as the file's own problems.
  for (const char* want : {"sweep.yaml:5: unknown key 'repeat'", "sets seed, which the sweep sets",
                           "arm key 'sets' is unknown", "arm name 'bad/name'", "arm name 'a' appears twice",
                           "target_arm 'nope' is not an arm", "arm 'c': ", "model.n_headz = 2: unknown key"})
    EXPECT_NE(msg.find(want), std::string::npos) << "missing: " << want << "\n" << msg;
  // and named by arm when the file itself is sound
  const std::string cfg_msg = error_of(sweep("  - name: c\n    set: {model.n_headz: 2}\n"));
  EXPECT_NE(cfg_msg.find("arm 'c'"), std::string::npos) << cfg_msg;
  EXPECT_NE(cfg_msg.find("n_headz"), std::string::npos) << cfg_msg;
  EXPECT_NE(error_of(write("s2.yaml", "base: missing.yaml\ndir: x\nseeds: [1, 1]\narms: []\n")).find("seeds repeat"),
            std::string::npos);
  EXPECT_NE(error_of((dir_ / "absent.yaml").string()).find("cannot be read"), std::string::npos);
}

TEST_F(SweepTest, StatusSeesFreshPartialAndFinishedRuns) {
  const fs::path run = dir_ / "run";
  EXPECT_EQ(run_status(run.string(), 20), RunStatus::fresh);
  fs::create_directories(run / "checkpoints" / "step_0000010");
  std::ofstream(run / "metrics.jsonl") << "{}\n";
  EXPECT_EQ(run_status(run.string(), 20), RunStatus::partial);  // logged, no checkpoint yet
  std::ofstream(run / "checkpoints" / "latest") << "step_0000010\n";
  std::ofstream(run / "checkpoints" / "step_0000010" / "state.json") << R"({"step": 10})";
  EXPECT_EQ(run_status(run.string(), 20), RunStatus::partial);
  fs::create_directories(run / "checkpoints" / "step_0000020");
  std::ofstream(run / "checkpoints" / "step_0000020" / "state.json") << R"({"step": 20})";
  std::ofstream(run / "checkpoints" / "latest") << "step_0000020\n";
  EXPECT_EQ(run_status(run.string(), 20), RunStatus::partial);  // final weights not written yet
  std::ofstream(run / "model.safetensors") << "x";
  EXPECT_EQ(run_status(run.string(), 20), RunStatus::finished);
  EXPECT_EQ(run_status(run.string(), 30), RunStatus::partial);  // the sweep now asks for more steps
}

TEST_F(SweepTest, StopsStartingRunsWhenTheTrainingCommandCannotStart) {
  const SweepSpec spec = load_sweep(sweep(kTwoArms));
  SweepOptions opt;
  opt.jobs = 1;
  EXPECT_EQ(run_sweep(spec, opt, (dir_ / "no_such_switchyard").string()), 127);
  std::ifstream in(dir_ / "out" / "sweep.json");
  const std::string manifest((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t failed = 0, planned = 0;
  for (size_t p = manifest.find("\"failed\""); p != std::string::npos; p = manifest.find("\"failed\"", p + 1)) ++failed;
  for (size_t p = manifest.find("\"planned\""); p != std::string::npos; p = manifest.find("\"planned\"", p + 1)) ++planned;
  EXPECT_EQ(failed, 1u) << manifest;   // the first run, and no other was tried
  EXPECT_EQ(planned, 3u) << manifest;
}

}  // namespace
}  // namespace sy
