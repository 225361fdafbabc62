#pragma once
// A step watchdog: a thread that ends the process (exit code 6, peer failed) when
// one training step takes longer than a limit. A rank blocked in a collective
// because a peer stalled or vanished would otherwise wait forever; every rank runs
// its own watchdog, and mpirun ends the job when the first of them exits.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace sy {

class StepWatchdog {
 public:
  // limit_seconds <= 0: disabled.
  StepWatchdog(double limit_seconds, int rank);
  ~StepWatchdog();
  void begin_step(int64_t step);  // arms the timer
  void end_step();                // disarms it

 private:
  void watch();
  double limit_;
  int rank_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, stop_ = false;
  int64_t step_ = -1;
  uint64_t generation_ = 0;
  std::thread thread_;
};

}  // namespace sy
