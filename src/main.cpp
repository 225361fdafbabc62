// switchyard: one executable, subcommands. Exit codes are documented in README.md.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <csignal>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/log.h"
#include "core/process.h"
#include "core/version.h"
#include "core/watchdog.h"
#include "backend/ops.h"
#include "checkpoint/checkpoint.h"
#include "data/prepare.h"
#include "study/report.h"
#include "study/specialisation.h"
#include "study/sweep.h"
#include "train/bench.h"
#include "infer/inference.h"
#include "train/evaluate.h"
#include "train/faults.h"
#include "train/signals.h"
#include "train/trainer.h"
#include "train/verify.h"

namespace {

struct ConfigArgs {
  std::string path;
  std::vector<std::string> overrides;
  void add_to(CLI::App* cmd) {
    cmd->add_option("-c,--config", path, "YAML config file")->required();
    cmd->add_option("--set", overrides, "override a config key: --set optim.lr=1e-3 (repeatable)")
        ->take_all();
  }
};

int run(int argc, char** argv, int rank) {
  CLI::App app{"switchyard: sparse Mixture-of-Experts Transformer pre-training"};
  app.set_version_flag("--version", std::string("switchyard ") + SWITCHYARD_VERSION);
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "debug logging");

  ConfigArgs train_args, bench_args;
  CLI::App* train = app.add_subcommand("train", "train a model from a config");
  train_args.add_to(train);
  std::string resume;
  train->add_option("--resume", resume,
                    "auto (the run directory's latest checkpoint, if any) or a checkpoint directory");
  bool fresh = false;
  train->add_flag("--fresh", fresh,
                  "start over in a run.dir that holds a run (its files are moved to "
                  "run.dir/replaced-<time>/ first)");

  std::string ckpt_path;
  CLI::App* inspect = app.add_subcommand("inspect", "print what a checkpoint holds");
  inspect->add_option("path", ckpt_path, "a checkpoint directory (…/checkpoints/step_NNNNNNN)")->required();
  CLI::App* verify = app.add_subcommand("verify", "check every checksum and index of a checkpoint");
  verify->add_option("path", ckpt_path, "a checkpoint directory")->required();

  CLI::App* bench = app.add_subcommand("bench", "benchmark one training step of a config");
  bench_args.add_to(bench);
  std::vector<std::string> benchmark_flags;
  bench->add_option("--benchmark", benchmark_flags,
                    "flags for Google Benchmark, e.g. --benchmark=--benchmark_repetitions=3");

  CLI::App* prepare = app.add_subcommand(
      "prepare", "corpus (prepare.input) → tokenizer + token shards (in data.path)");
  ConfigArgs prepare_args;
  prepare_args.add_to(prepare);

  CLI::App* generate = app.add_subcommand("generate", "continue prompts with a finished decoder run's model");
  sy::GenerateOptions gen_opt;
  std::string prompt_text, prompt_file;
  generate->add_option("--run", gen_opt.run, "the run directory (config.yaml, final weights)")->required();
  generate->add_option("--checkpoint", gen_opt.checkpoint, "a checkpoint of the run instead of its final weights");
  auto* prompt_opt = generate->add_option("--prompt", prompt_text, "the text to continue");
  generate->add_option("--prompt-file", prompt_file, "prompts, one per line, generated as one batch")
      ->excludes(prompt_opt);
  generate->add_option("--max-new-tokens", gen_opt.sampling.max_new_tokens, "at most this many new tokens (64)");
  generate->add_option("--temperature", gen_opt.sampling.temperature, "0: greedy; default 1");
  generate->add_option("--top-k", gen_opt.sampling.top_k, "sample among the k most likely tokens (0: all)");
  generate->add_option("--top-p", gen_opt.sampling.top_p, "nucleus sampling mass in (0, 1] (1: all)");
  generate->add_option("--seed", gen_opt.sampling.seed, "sampling seed (the same seed and inputs give the same text)");
  generate->add_flag("--json", gen_opt.json, "one JSON object per prompt, with every new token's experts");
  generate->add_option("--set", gen_opt.overrides, "override a config key (e.g. data.path=...)")->take_all();

  CLI::App* fill = app.add_subcommand("fill-mask", "predict the <mask> positions of a text with an encoder run");
  sy::FillMaskOptions fill_opt;
  fill->add_option("--run", fill_opt.run, "the run directory")->required();
  fill->add_option("--checkpoint", fill_opt.checkpoint, "a checkpoint of the run instead of its final weights");
  fill->add_option("--text", fill_opt.text, "text with one or more <mask>")->required();
  fill->add_option("--top", fill_opt.top, "candidates per mask (5)");
  fill->add_flag("--json", fill_opt.json, "one JSON object");
  fill->add_option("--set", fill_opt.overrides, "override a config key")->take_all();

  CLI::App* eval = app.add_subcommand("eval", "evaluate a finished run's model on a split");
  std::string eval_run, eval_split = "val";
  std::vector<std::string> eval_overrides;
  eval->add_option("--run", eval_run, "the run directory (holds config.yaml, model.safetensors)")
      ->required();
  eval->add_option("--split", eval_split, "val or test")->check(CLI::IsMember({"val", "test"}));
  eval->add_option("--set", eval_overrides, "override a config key (e.g. data.path=...)")->take_all();
  sy::EvalOptions eval_opt;
  eval->add_option("--save-batches", eval_opt.save_batches,
                   "also write the evaluated batches (ids, targets) to this safetensors file, for "
                   "reference implementations (python/switchyard_torch)");
  eval->add_flag("--gradients", eval_opt.gradients,
                 "with --save-batches: add the gradients of the training objective on the first batch");
  eval->add_option("--trace", eval_opt.trace,
                   "MoE runs: write the routing trace (each token's experts and gates per MoE layer, "
                   "JSON lines, docs/trace.md) to this file; `switchyard report --trace` reads it");

  CLI::App* check = app.add_subcommand("check-config", "validate a config and print it resolved");
  ConfigArgs check_args;
  check_args.add_to(check);

  CLI::App* sweep = app.add_subcommand("sweep", "run every arm × seed of a sweep file (resumable)");
  std::string sweep_file;
  sy::SweepOptions sweep_opt;
  sweep->add_option("file", sweep_file, "the sweep file (YAML: base, dir, seeds, arms)")->required();
  sweep->add_option("-j,--jobs", sweep_opt.jobs, "runs at once (give each run threads = cores / jobs)")
      ->check(CLI::Range(1, 256));
  sweep->add_flag("--dry-run", sweep_opt.dry_run, "print the plan and the commands; run nothing");

  CLI::App* report = app.add_subcommand("report", "report.md and plots from runs' metrics");
  std::vector<std::string> report_dirs;
  sy::ReportOptions report_opt;
  report->add_option("dirs", report_dirs, "sweep directories, run directories, or folders of runs");
  std::vector<std::string> report_traces;
  report->add_option("--trace", report_traces,
                     "routing traces (`eval --trace`): write specialisation.md, the experts' pieces and "
                     "token classes (and part-of-speech heat maps), instead of report.md")
      ->take_all();
  report->add_option("-o,--out", report_opt.out, "where report.md and the PNGs go (default: the first DIR)");
  report->add_option("--target", report_opt.target_arm,
                     "the arm whose mean final perplexity is the steps-to-target target (default: the "
                     "sweep's target_arm, else gshard_top2)");
  bool no_plots = false;
  report->add_flag("--no-plots", no_plots, "write report.md only (no matplotlib needed)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0.
    const int code = app.exit(e);
    return code == 0 ? 0 : static_cast<int>(sy::ExitCode::bad_input);
  }
  sy::init_logging(rank, sy::world_size(), verbose);

  if (*train) {
    const sy::Config cfg = sy::load_config(train_args.path, train_args.overrides);
    auto ops = sy::make_ops(cfg.backend);
    sy::Trainer trainer(cfg, *ops);
    return trainer.run(resume, fresh).exit_code;
  } else if (*bench) {
    const sy::Config cfg = sy::load_config(bench_args.path, bench_args.overrides);
    return sy::run_bench(cfg, benchmark_flags);
  } else if (*prepare) {
    const sy::Config cfg = sy::load_config(prepare_args.path, prepare_args.overrides);
    if (cfg.prepare.input.empty())
      throw sy::Error(sy::ExitCode::bad_input,
                      prepare_args.path + ": prepare.input is not set (the corpus to prepare)");
    if (rank == 0)
      sy::prepare_dataset(cfg.prepare, cfg.data.path, cfg.model.vocab_size, cfg.seed,
                          cfg.threads > 0 ? static_cast<int>(cfg.threads) : 2);
  } else if (*eval) {
    if (eval_opt.gradients && eval_opt.save_batches.empty())
      throw sy::Error(sy::ExitCode::bad_input, "--gradients needs --save-batches FILE");
    return sy::run_eval(eval_run, eval_split, eval_overrides, rank, eval_opt);
  } else if (*generate || *fill) {
    if (sy::world_size() > 1)
      throw sy::Error(sy::ExitCode::bad_input, "generate and fill-mask run as one process (not under mpirun)");
    if (*fill) return sy::run_fill_mask(fill_opt);
    if (!prompt_file.empty()) gen_opt.prompts = sy::read_prompt_file(prompt_file);
    else if (generate->count("--prompt")) gen_opt.prompts = {prompt_text};
    return sy::run_generate(gen_opt);
  } else if (*inspect) {
    if (rank == 0) std::fputs(sy::describe_checkpoint(ckpt_path).c_str(), stdout);
  } else if (*verify) {
    sy::verify_checkpoint(ckpt_path);
    if (rank == 0) std::printf("ok: %s: every checksum and index entry verified\n", ckpt_path.c_str());
  } else if (*sweep || *report) {
    if (sy::world_size() > 1)
      throw sy::Error(sy::ExitCode::bad_input, "sweep and report run as one process; the sweep starts "
                                               "mpirun itself when the sweep file sets ranks > 1");
    if (*report) {
      report_opt.plots = !no_plots;
      if (!report_traces.empty()) {
        if (!report_dirs.empty())
          throw sy::Error(sy::ExitCode::bad_input, "report: give run directories or --trace files, not both");
        if (report_opt.out.empty()) report_opt.out = std::filesystem::path(report_traces.front()).parent_path().string();
        if (report_opt.out.empty()) report_opt.out = ".";
        return sy::write_trace_report(report_traces, report_opt.out, report_opt.plots);
      }
      if (report_dirs.empty())
        throw sy::Error(sy::ExitCode::bad_input, "report: name the run or sweep directories (or --trace FILE)");
      if (report_opt.out.empty()) report_opt.out = report_dirs.front();
      return sy::write_report(report_dirs, report_opt);
    }
    const sy::SweepSpec spec = sy::load_sweep(sweep_file);
    return sy::run_sweep(spec, sweep_opt, std::filesystem::read_symlink("/proc/self/exe").string());
  } else if (*check) {
    const sy::Config cfg = sy::load_config(check_args.path, check_args.overrides);
    if (rank == 0) std::fputs(sy::to_yaml(cfg).c_str(), stdout);
  }
  return 0;
}

// `switchyard train ...`: the first argument that is not an option.
bool is_train(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-') return std::string(argv[i]) == "train";
  return false;
}

}  // namespace

// OpenMP threads that spin while they wait (libgomp's default) take the core from
// the thread doing serial work when cores are few or shared (SMT siblings,
// oversubscribed ranks): measured 15-20% slower steps on 2 vCPUs with
// `switchyard bench`, twice slower with small batches. libgomp reads
// OMP_WAIT_POLICY when it loads, before main(), so unless the user chose a policy
// the process re-executes itself once with PASSIVE. A training run blocks its stop
// signals across the exec: a stop that comes meanwhile waits for the handler.
//
// OpenBLAS picks its kernels when it loads too: on a processor newer than the
// library it falls back to an old one (OpenBLAS 0.3.21 on Emerald Rapids: the SSE3
// Prescott kernels, sgemm 22 instead of 120 GFLOP/s, training 3× slower), so the
// same re-execution names the kernel the processor can run (OPENBLAS_CORETYPE),
// unless the user did.
static void tune_runtime_env(char** argv, bool train) {
  bool exec = false;
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    exec = true;
  }
  const std::string kernel = sy::cpu_blas_kernel_override();
  if (!kernel.empty()) {
    setenv("OPENBLAS_CORETYPE", kernel.c_str(), 1);
    exec = true;
  }
  if (!exec) return;
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  if (train) sigprocmask(SIG_BLOCK, &stops, nullptr);
  execv("/proc/self/exe", argv);
  if (train) sigprocmask(SIG_UNBLOCK, &stops, nullptr);  // no exec: the default policy, then
}

int main(int argc, char** argv) {
  // A training run owns SIGTERM/SIGINT from its first instruction: a stop that comes
  // during start-up or a restore is honoured at the first point all ranks agree on
  // (exit 3), never the default death by signal (exit 143).
  const bool train = is_train(argc, argv);
  tune_runtime_env(argv, train);
  if (train) sy::install_stop_handlers();
  // Under a launcher, the watchdog covers the job from MPI's start-up (a peer that
  // never arrives) with SWITCHYARD_STARTUP_TIMEOUT_S (default 900 s) until the
  // config's parallel.step_timeout_s takes over.
  if (train && sy::launched_by_launcher()) {
    const char* t = std::getenv("SWITCHYARD_STARTUP_TIMEOUT_S");
    sy::Watchdog::get().start(t ? std::atof(t) : 900.0, "start-up");
  }
  sy::init_process(&argc, &argv);
  const int rank = sy::world_rank();
  if (sy::world_size() > 1) sy::Watchdog::get().set_rank(rank);
  else sy::Watchdog::get().disarm();  // no peers to wait for
  if (train) sy::maybe_stall(rank, "start");
  int code = 0;
  try {
    code = run(argc, argv, rank);
  } catch (const sy::Error& e) {
    // On several ranks, an error may have been seen by this rank alone (a disk
    // error while it writes a checkpoint, say) while the others wait for it in a
    // collective: end the whole job through the one fatal path, with the error's
    // exit code. A single process just reports it.
    if (sy::world_size() > 1) sy::fatal(e.code(), e.what());
    std::fprintf(stderr, "error: %s\n", e.what());
    code = static_cast<int>(e.code());
  } catch (const std::exception& e) {
    sy::fatal(sy::ExitCode::internal, std::string("unexpected error: ") + e.what());
  }
  sy::flush_logs();
  sy::Watchdog::get().phase("finalisation");
  sy::maybe_stall(rank, "finalize");
  sy::finalize_process();
  sy::Watchdog::get().disarm();
  return code;
}
