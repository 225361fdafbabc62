#include "train/watchdog.h"

#include <chrono>

#include "core/errors.h"
#include "core/log.h"

namespace sy {

StepWatchdog::StepWatchdog(double limit_seconds, int rank) : limit_(limit_seconds), rank_(rank) {
  if (limit_ > 0) thread_ = std::thread([this] { watch(); });
}

StepWatchdog::~StepWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StepWatchdog::begin_step(int64_t step) {
  if (limit_ <= 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = true;
    step_ = step;
    ++generation_;
  }
  cv_.notify_all();
}

void StepWatchdog::end_step() {
  if (limit_ <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = false;
  ++generation_;
}

void StepWatchdog::watch() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (!armed_) {
      cv_.wait(lock);
      continue;
    }
    const uint64_t gen = generation_;
    const int64_t step = step_;
    const auto limit = std::chrono::duration<double>(limit_);
    if (cv_.wait_for(lock, limit, [&] { return stop_ || generation_ != gen; })) continue;
    // Not the fatal() path: MPI is not ours to call from this thread. Exiting is
    // enough: mpirun ends the whole job when any rank exits non-zero.
    log_error("fatal (rank {}): step {} has run for more than {:.0f} s (parallel.step_timeout_s); "
              "a peer rank has stalled or died. Exit code {}",
              rank_, step, limit_, static_cast<int>(ExitCode::peer_failed));
    flush_logs();
    std::_Exit(static_cast<int>(ExitCode::peer_failed));
  }
}

}  // namespace sy
