// The sweep's process runner: children are `switchyard train --resume auto`, each
// in its own process group (so a terminal's Ctrl-C reaches the sweep alone, which
// passes SIGTERM on: every child checkpoints and exits 3, and so does the sweep).
// A child dies with the sweep (SIGTERM when the sweep is gone, even by SIGKILL), a
// sweep directory has one sweep at a time (a lock), and a run directory still
// locked by a trainer of an earlier sweep is waited for, not trained over.
#include <csignal>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "core/dir_lock.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/timer.h"
#include "study/sweep.h"

namespace sy {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A child that could not exec the training command exits with this (the shell's
// "command not found" code); every other run would fail the same way.
constexpr int kCannotExecute = 127;

volatile std::sig_atomic_t g_sweep_stop = 0;
extern "C" void on_sweep_signal(int) { g_sweep_stop = 1; }

void install_sweep_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_sweep_signal;  // no SA_RESTART: waitpid returns EINTR
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

const char* status_name(RunStatus s) {
  return s == RunStatus::finished ? "finished" : s == RunStatus::partial ? "partial" : "fresh";
}

std::vector<std::string> train_command(const SweepSpec& spec, const SweepRun& r, const std::string& exe) {
  std::vector<std::string> argv;
  if (spec.ranks > 1) {
    argv = spec.mpirun;
    argv.insert(argv.end(), {"-np", std::to_string(spec.ranks)});
    const bool has = std::find(argv.begin(), argv.end(), "--allow-run-as-root") != argv.end();
    if (geteuid() == 0 && !has) argv.push_back("--allow-run-as-root");
  }
  argv.insert(argv.end(), {exe, "train", "--config", spec.base, "--resume", "auto"});
  for (const std::string& o : r.overrides) argv.insert(argv.end(), {"--set", o});
  return argv;
}

// `direct`: the child is switchyard itself (not mpirun), which installs its stop
// handlers first thing and unblocks the stop signals: until then they are held
// blocked, so a stop that arrives while it starts is honoured (exit 3), not fatal.
// (mpirun is not started with them blocked: it would never see the stop.)
pid_t launch(const std::vector<std::string>& argv, const std::string& console, bool direct) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw Error(ExitCode::internal, std::string("sweep: fork failed: ") + std::strerror(errno));
  if (pid > 0) return pid;
  setpgid(0, 0);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  // The child stops when the sweep dies, however it dies (and at once if it
  // already has).
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(static_cast<int>(ExitCode::preempted));
  if (direct) {
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    sigprocmask(SIG_BLOCK, &stops, nullptr);
  }
  const int fd = open(console.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execvp(args[0], args.data());
  std::fprintf(stderr, "sweep: cannot run %s: %s\n", args[0], std::strerror(errno));
  _exit(kCannotExecute);
}

// The last validation perplexity a run logged (0 when none).
double last_val_ppl(const std::string& run_dir) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  double ppl = 0;
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("val_ppl")) ppl = j["val_ppl"].get<double>();
  }
  return ppl;
}

struct Tracked {
  std::string status;  // planned, skipped, finished, stopped, failed
  int exit_code = 0;
  double seconds = 0;
};

void write_manifest(const SweepSpec& spec, const std::vector<SweepRun>& runs,
                    const std::vector<Tracked>& state) {
  json j;
  j["sweep_file"] = spec.file;
  j["base"] = spec.base;
  j["target_arm"] = spec.target_arm;
  j["ranks"] = spec.ranks;
  json arms = json::array();
  for (const SweepArm& a : spec.arms) arms.push_back({{"name", a.name}, {"seeds", a.seeds}, {"set", a.overrides}});
  j["arms"] = arms;
  json rs = json::array();
  for (size_t i = 0; i < runs.size(); ++i)
    rs.push_back({{"arm", runs[i].arm}, {"seed", runs[i].seed},
                  {"dir", fs::path(runs[i].dir).lexically_relative(spec.dir).string()},  // relative to sweep.json
                  {"status", state[i].status}, {"exit_code", state[i].exit_code},
                  {"seconds", state[i].seconds}});
  j["runs"] = rs;
  fs::create_directories(spec.dir);
  const std::string tmp = spec.dir + "/sweep.json.tmp";
  std::ofstream(tmp) << j.dump(2) << "\n";
  fs::rename(tmp, spec.dir + "/sweep.json");
}

// A finished run whose recorded config differs from what the sweep now asks for
// would be skipped and then reported under the wrong name: refuse instead.
void check_same_config(const SweepRun& r, const Config& want) {
  std::ifstream in(r.dir + "/config.yaml");
  if (!in) return;
  std::stringstream have;
  have << in.rdbuf();
  const std::string now = to_yaml(want);
  if (have.str() == now) return;
  std::istringstream a(have.str()), b(now);
  std::string la, lb;
  int line = 0;
  while (true) {
    ++line;
    const bool ga = static_cast<bool>(std::getline(a, la)), gb = static_cast<bool>(std::getline(b, lb));
    if (!ga && !gb) break;
    if (!ga || !gb || la != lb) break;
  }
  throw Error(ExitCode::bad_input,
              fmt::format("sweep: '{}/config.yaml' holds another config than arm '{}' seed {} now asks for "
                          "(line {}: '{}' there, '{}' now); move that run directory away, or restore the "
                          "sweep file", r.dir, r.arm, r.seed, line, la, lb));
}

// A run directory whose trainer is still running (a sweep killed without its
// children stopping first; they stop now, saving a checkpoint): wait for it.
void wait_for_run_dir(const std::string& dir) {
  for (int waited = 0;; ++waited) {
    const std::string who = DirLock::holder(dir);
    if (who.empty()) return;
    if (waited == 0) log_warn("sweep: {} is still in use ({}); waiting for it to end", dir, who);
    if (waited >= 600)
      throw Error(ExitCode::bad_input,
                  fmt::format("sweep: {} is still in use after 10 minutes ({}); stop that trainer or "
                              "wait for it, then run the sweep again", dir, who));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

int run_sweep(const SweepSpec& spec, const SweepOptions& opt, const std::string& exe) {
  const std::vector<SweepRun> runs = expand_sweep(spec);
  std::vector<Tracked> state(runs.size());
  std::deque<size_t> todo;
  for (size_t i = 0; i < runs.size(); ++i) {
    const Config cfg = load_config(spec.base, runs[i].overrides);
    check_same_config(runs[i], cfg);
    const RunStatus st = run_status(runs[i].dir, cfg.train.steps);
    state[i].status = st == RunStatus::finished ? "skipped" : "planned";
    if (st != RunStatus::finished) todo.push_back(i);
    log_info("sweep: [{:>2}/{}] {} seed {}: {}{}", i + 1, runs.size(), runs[i].arm, runs[i].seed,
             status_name(st), st == RunStatus::finished ? " (skipped)" : st == RunStatus::partial ? " (resumes)" : "");
  }
  log_info("sweep: {} runs, {} finished, {} to run, {} at a time, {} rank(s) each", runs.size(),
           runs.size() - todo.size(), todo.size(), opt.jobs, spec.ranks);
  if (opt.dry_run) {
    for (size_t i : todo) log_info("sweep: would run: {}", fmt::join(train_command(spec, runs[i], exe), " "));
    return 0;
  }
  fs::create_directories(spec.dir);
  const DirLock lock = DirLock::acquire(spec.dir, "a sweep");
  write_manifest(spec, runs, state);
  install_sweep_handlers();
  std::map<pid_t, std::pair<size_t, Timer>> running;
  std::vector<int64_t> launched_at(runs.size(), -1);  // each run's committed step at launch
  bool stopping = false, forwarded = false;
  bool cannot_start = false;  // the training command itself failed to start: so would every other
  int first_failure = 0;
  while (!todo.empty() || !running.empty()) {
    if (g_sweep_stop) stopping = true;
    if (stopping && !forwarded) {
      for (auto& [pid, _] : running) kill(-pid, SIGTERM);
      forwarded = true;
      log_warn("sweep: stopping: {} running run(s) checkpoint and stop; run the sweep again to resume",
               running.size());
    }
    while (!stopping && !cannot_start && !todo.empty() && static_cast<int>(running.size()) < opt.jobs) {
      const size_t i = todo.front();
      todo.pop_front();
      fs::create_directories(runs[i].dir);
      wait_for_run_dir(runs[i].dir);
      launched_at[i] = committed_step(runs[i].dir);
      std::ofstream(runs[i].dir + "/sweep_run.json")
          << json{{"arm", runs[i].arm}, {"seed", runs[i].seed}, {"sweep_file", spec.file}}.dump(2) << "\n";
      const pid_t pid = launch(train_command(spec, runs[i], exe), runs[i].dir + "/console.txt", spec.ranks <= 1);
      running.emplace(pid, std::make_pair(i, Timer()));
      log_info("sweep: start {} seed {} → {} (output: console.txt)", runs[i].arm, runs[i].seed, runs[i].dir);
    }
    int wstatus = 0;
    const pid_t pid = waitpid(-1, &wstatus, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: nothing running
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const size_t i = it->second.first;
    state[i].seconds = it->second.second.seconds();
    running.erase(it);
    const int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    state[i].exit_code = code;
    if (code == 0) {
      state[i].status = "finished";
      log_info("sweep: {} seed {} finished in {:.0f}s, validation perplexity {:.3f}", runs[i].arm,
               runs[i].seed, state[i].seconds, last_val_ppl(runs[i].dir));
    } else if (code == static_cast<int>(ExitCode::preempted) ||
               (forwarded && committed_step(runs[i].dir) > launched_at[i])) {
      // Stopped: exit 3, or, when the sweep passed a stop to mpirun (which reports
      // its own code, not its ranks' 3), a checkpoint saved on the way out.
      state[i].status = "stopped";
      stopping = true;  // a preempted run means the job is being preempted
      log_warn("sweep: {} seed {} stopped after a checkpoint (exit {})", runs[i].arm, runs[i].seed, code);
    } else {
      state[i].status = "failed";
      if (first_failure == 0) first_failure = code;
      log_error("sweep: {} seed {} failed with exit code {}; its output is in {}/console.txt", runs[i].arm,
                runs[i].seed, code, runs[i].dir);
      if (code == kCannotExecute && !cannot_start) {
        cannot_start = true;
        log_error("sweep: the training command could not be started ('{}' missing or not executable? "
                  "rebuilding while a sweep runs does that); no further runs are started, the "
                  "running ones finish; run the sweep again once it is fixed",
                  train_command(spec, runs[i], exe).front());
      }
    }
    write_manifest(spec, runs, state);
  }
  write_manifest(spec, runs, state);
  int finished = 0, failed = 0;
  for (const Tracked& t : state) {
    finished += t.status == "finished" || t.status == "skipped";
    failed += t.status == "failed";
  }
  log_info("sweep: {} of {} runs finished, {} failed{}; manifest {}/sweep.json", finished, runs.size(), failed,
           stopping ? ", stopped (run again to resume)" : "", spec.dir);
  if (first_failure != 0) return first_failure;
  return stopping ? static_cast<int>(ExitCode::preempted) : 0;
}

}  // namespace sy
