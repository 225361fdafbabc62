#include "train/faults.h"

#include <cstdio>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/errors.h"

namespace sy {

void maybe_inject_fault(int rank, int64_t step) {
  static const char* spec = std::getenv("SWITCHYARD_INJECT_FAULT");
  if (!spec || !*spec) return;
  int fault_rank = -1;
  long long fault_step = -1;
  char kind[16] = "fail";
  const int n = std::sscanf(spec, "rank=%d,step=%lld,%15s", &fault_rank, &fault_step, kind);
  if (n < 2)
    fatalf(ExitCode::bad_input, "SWITCHYARD_INJECT_FAULT='{}': expected rank=R,step=S[,stall|term|nan|drift]",
           spec);
  if (rank != fault_rank || step != fault_step || std::string(kind) == "nan" || std::string(kind) == "drift")
    return;
  if (std::string(kind) == "term") {  // preemption: the scheduler's SIGTERM
    std::raise(SIGTERM);
    return;
  }
  if (std::string(kind) == "stall")  // a rank that stops answering
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  fatalf(ExitCode::internal, "injected fault at step {} (SWITCHYARD_INJECT_FAULT)", step);
}

}  // namespace sy

namespace sy {

bool injected(int rank, int64_t step, const char* what) {
  static const char* spec = std::getenv("SWITCHYARD_INJECT_FAULT");
  if (!spec || !*spec) return false;
  int r = -1;
  long long s = -1;
  char kind[16] = "";
  return std::sscanf(spec, "rank=%d,step=%lld,%15s", &r, &s, kind) == 3 && r == rank &&
         s == step && std::string(kind) == what;
}

}  // namespace sy

namespace sy {

void maybe_stall(int rank, const char* phase) {
  static const char* spec = std::getenv("SWITCHYARD_STALL");
  if (!spec || !*spec) return;
  const std::string s = spec, at = std::to_string(rank) + "@" + phase;
  if (s == at)
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  if (s.rfind(at + ":", 0) == 0)  // "R@PHASE:SECONDS": a slow phase, not a dead one
    std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(s.c_str() + at.size() + 1)));
}

}  // namespace sy
