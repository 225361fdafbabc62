#pragma once
// One fatal-error path for the whole job. Exit codes are part of the interface
// (documented in README.md): every rank exits with the same one.
#include <stdexcept>
#include <string>

#include <spdlog/fmt/fmt.h>

namespace sy {

enum class ExitCode : int {
  ok = 0,
  internal = 1,      // a bug or an unexpected system failure
  bad_input = 2,     // configuration, command line or input data
  preempted = 3,     // checkpointed after SIGTERM/SIGINT: requeue me
  non_finite = 4,    // aborted on NaN/Inf
  checkpoint = 5,    // checkpoint missing or corrupt
  peer_failed = 6,   // another rank failed or timed out
};

// An error that every rank detects identically (a config error, say). Thrown,
// caught in main, and turned into a collective clean exit with its code.
class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// Logs `message` with this rank's id, then ends the whole job: MPI_Abort when
// several ranks run (so no peer hangs waiting for this one), a plain exit
// otherwise. Never returns.
[[noreturn]] void fatal(ExitCode code, const std::string& message);

template <class... Args>
[[noreturn]] void fatalf(ExitCode code, fmt::format_string<Args...> f, Args&&... args) {
  fatal(code, fmt::format(f, std::forward<Args>(args)...));
}

// Always-on invariant check (never compiled out): a failed check is a bug.
#define SY_CHECK(cond, ...)                                                            \
  do {                                                                                 \
    if (!(cond))                                                                       \
      ::sy::fatal(::sy::ExitCode::internal,                                            \
                  fmt::format("check failed at {}:{}: {}: {}", __FILE__, __LINE__, #cond, \
                              fmt::format(__VA_ARGS__)));                              \
  } while (0)

}  // namespace sy
