#pragma once
// `switchyard sweep FILE`: every arm × seed of a sweep file, each in its own run
// directory, resumable. A sweep file:
//
//   base: decoder_base.yaml          # a config, relative to the sweep file
//   dir: runs/study/decoder          # run directories: <dir>/<arm>/seed_<seed>
//   seeds: [1, 2, 3]                 # default seeds of every arm
//   ranks: 1                         # processes per run; > 1 runs through mpirun
//   mpirun: [mpirun, --oversubscribe]  # the launcher (optional)
//   target_arm: gshard_top2          # the report's steps-to-target reference (optional)
//   set: {train.steps: 2000}         # overrides of every arm, before the arm's own (optional)
//   arms:
//     - name: dense
//       set: {moe.num_experts: 0}    # overrides, as `--set key=value`
//     - name: ec_group64
//       seeds: [1]                   # an arm may run fewer (or other) seeds
//       set: {...}
//   arms_from: decoder.yaml          # instead of arms: another sweep file's arms (and its
//                                    # seeds and target_arm, unless given here)
//
// Every arm of one seed sees the same data in the same order: arms may not
// change what sets the data order (data.*, train.batch_size, train.seq_len,
// train.grad_accum, ranks), and the sweep refuses a file where one does.
#include <cstdint>
#include <string>
#include <vector>

namespace sy {

struct SweepArm {
  std::string name;
  std::vector<int64_t> seeds;
  std::vector<std::string> overrides;  // "key=value": the sweep's `set`, then the arm's, in file order
};

struct SweepSpec {
  std::string file;        // the sweep file
  std::string base;        // the base config, resolved against the sweep file's folder
  std::string dir;         // where run directories go
  std::string target_arm;  // "" when not given
  int ranks = 1;
  std::vector<std::string> mpirun = {"mpirun"};
  std::vector<SweepArm> arms;
};

// One run of a sweep: an arm at a seed.
struct SweepRun {
  std::string arm;
  int64_t seed = 0;
  std::string dir;                     // <dir>/<arm>/seed_<seed>
  std::vector<std::string> overrides;  // the arm's, then seed= and run.dir=
};

// Parses and checks a sweep file, and every config it expands to. Throws
// Error(bad_input) listing every problem, each with file:line or the arm.
SweepSpec load_sweep(const std::string& path);

// Seed-major (every arm of the first seed, then of the next, …), so a sweep cut
// short still has whole seeds to compare.
std::vector<SweepRun> expand_sweep(const SweepSpec& spec);

enum class RunStatus { fresh, partial, finished };
// finished: the latest checkpoint is at the config's last step and the final
// weights are written; partial: some checkpoint or log exists; fresh: nothing.
RunStatus run_status(const std::string& run_dir, int64_t steps);

struct SweepOptions {
  int jobs = 1;          // runs at once (each with `ranks` processes)
  bool dry_run = false;  // print the plan, run nothing
};

// Runs what is not finished; returns the exit code: 0 when every run finished,
// 3 when stopped by SIGINT/SIGTERM (run it again to resume), otherwise the exit
// code of the first run that failed (the others still run).
int run_sweep(const SweepSpec& spec, const SweepOptions& opt, const std::string& exe);

}  // namespace sy
