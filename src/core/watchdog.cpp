#include "core/watchdog.h"

#include <chrono>
#include <cmath>
#include <cstdlib>

#include "core/errors.h"
#include "core/log.h"

namespace sy {

namespace {
double effective(double limit) {
  return std::isfinite(limit) && limit > 0 && limit <= Watchdog::kNoLimitSeconds ? limit : 0.0;
}
}  // namespace

Watchdog& Watchdog::get() {
  static Watchdog w;
  return w;
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::start(double limit_seconds, const std::string& phase_name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = effective(limit_seconds);
    if (!thread_.joinable()) thread_ = std::thread([this] { watch(); });
  }
  phase(phase_name);
}

void Watchdog::set_limit(double limit_seconds) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = effective(limit_seconds);
    ++generation_;  // the current phase is timed from now, with the new limit
  }
  cv_.notify_all();
}

void Watchdog::set_rank(int rank) {
  std::lock_guard<std::mutex> lock(mu_);
  rank_ = rank;
}

void Watchdog::phase(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable()) return;  // never started: a world of one, or a unit test
    armed_ = true;
    phase_ = name;
    ++generation_;
  }
  cv_.notify_all();
}

void Watchdog::disarm() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = false;
    ++generation_;
  }
  cv_.notify_all();
}

void Watchdog::watch() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (!armed_ || limit_ <= 0) {
      cv_.wait(lock);
      continue;
    }
    const uint64_t gen = generation_;
    const double limit = limit_;
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(limit));
    if (cv_.wait_until(lock, deadline, [&] { return stop_ || generation_ != gen; })) continue;
    // Not the fatal() path: MPI is not ours to call from this thread, and it may be
    // what hangs. Exiting is enough: mpirun ends the whole job when a rank exits
    // non-zero.
    log_error("fatal (rank {}): {} has run for more than {:.0f} s (parallel.step_timeout_s); a "
              "peer rank has stalled or died. Exit code {}",
              rank_, phase_, limit, static_cast<int>(ExitCode::peer_failed));
    flush_logs();
    std::_Exit(static_cast<int>(ExitCode::peer_failed));
  }
}

}  // namespace sy
