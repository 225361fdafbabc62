#pragma once
// The job watchdog: a thread that ends the process with exit code 6 (peer failed)
// when one phase of a multi-rank job takes longer than its limit. A rank blocked in
// a collective because a peer stalled or vanished would otherwise wait forever, in
// any phase: start-up (MPI_Init, the first collectives), a restore, each training
// step (with its evaluation, logging and checkpoint), the final save, finalisation.
// Every rank runs its own; mpirun ends the job when the first of them exits.
//
// One per process (Watchdog::get()). Idle until start(); a limit of 0, infinity or
// anything beyond kNoLimitSeconds means no limit.
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace sy {

class Watchdog {
 public:
  // Limits beyond this (about three years) are "no limit": a deadline that far
  // would overflow the clock, and no phase is meant to last that long.
  static constexpr double kNoLimitSeconds = 1e8;

  static Watchdog& get();
  ~Watchdog();
  // Starts the thread (once) and arms it for `phase` with `limit_seconds`.
  void start(double limit_seconds, const std::string& phase);
  void set_limit(double limit_seconds);
  void set_rank(int rank);
  // Ends the current phase and arms the timer for the next one.
  void phase(const std::string& name);
  void disarm();

 private:
  Watchdog() = default;
  void watch();
  std::mutex mu_;
  std::condition_variable cv_;
  double limit_ = 0;
  int rank_ = -1;
  bool armed_ = false, stop_ = false;
  std::string phase_;
  uint64_t generation_ = 0;
  std::thread thread_;
};

}  // namespace sy
