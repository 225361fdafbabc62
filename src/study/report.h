#pragma once
// `switchyard report DIR…`: report.md and PNG plots from the runs' metrics.jsonl.
// A DIR is a sweep directory (its sweep.json lists the runs and the target arm),
// a run directory, or any folder holding run directories.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "study/report_stats.h"

namespace sy {

// One run, as its metrics.jsonl and config.yaml tell it.
struct RunRecord {
  std::string arm, dir;
  int64_t seed = 0;
  int ranks = 1;
  Config cfg;
  bool finished = false;        // logged its last step
  Curve val, val_groups, val_threshold;  // (steps done, perplexity) at each evaluation
  std::vector<double> log_step;          // steps done, at each logged line
  std::vector<double> train_nll, tokens_per_s, dropped, max_load;  // per logged line (MoE: mean over layers)
  std::array<double, 5> experts_per_token{};  // fraction of tokens, last quarter of training, all layers
  double final_val_nll = 0;
  // hardware.json: the distinct hardware its sessions ran on (core/hardware.h
  // hardware_key); empty when the run did not record it.
  std::vector<std::string> hardware;
};

// Everything the tables and plots show about one arm.
struct ArmSummary {
  std::string name;
  std::vector<const RunRecord*> runs;  // finished runs only
  MeanStd final_ppl, final_groups, final_threshold, tokens_per_s, step_ms, dropped, max_load, gap;
  std::vector<double> to_target;  // steps to the target, per run (-1: not reached)
  std::vector<std::pair<int64_t, double>> final_by_seed;  // (seed, final perplexity)
  bool token_choice = false, expert_choice = false;
  std::array<double, 5> experts_per_token{}, random_router{};
  int64_t group_tokens = 0, experts = 0;
  double ec_capacity = 0;
};

struct ReportInput {
  std::vector<RunRecord> runs;
  std::string target_arm;  // from sweep.json, or --target
  std::vector<std::string> sources;
};

// Reads every run under the given directories. Throws Error(bad_input) naming a
// directory that holds no run, or a metrics line that is not JSON.
ReportInput load_runs(const std::vector<std::string>& dirs);
std::vector<ArmSummary> summarise(const ReportInput& in, double target_ppl);
double target_perplexity(const ReportInput& in);  // the target arm's mean final perplexity; 0: none

struct ReportOptions {
  std::string out;         // folder for report.md, report_data.json and the PNGs
  std::string target_arm;  // overrides sweep.json's
  bool plots = true;
};
// Writes the report; returns the exit code.
int write_report(const std::vector<std::string>& dirs, const ReportOptions& opt);

// Runs the embedded plot script (scripts/plot_report.py) on a data file, writing
// PNGs into `out`; false (with a message) when no python3 with matplotlib is found.
bool draw_report_plots(const std::string& data_json, const std::string& out);

// report.md's text (exposed for tests).
std::string report_markdown(const ReportInput& in, const std::vector<ArmSummary>& arms, double target_ppl,
                            bool with_plots);

}  // namespace sy
