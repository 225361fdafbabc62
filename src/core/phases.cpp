#include "core/phases.h"

namespace sy {
namespace {

struct Profiler {
  std::function<void()> synchronize;
  PhaseTotals totals;
};

Profiler& profiler() {
  static Profiler p;
  return p;
}

}  // namespace

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::attention: return "attention";
    case Phase::expert_gemm: return "expert GEMMs";
    case Phase::routing: return "routing + dispatch + combine";
    case Phase::communication: return "communication";
    case Phase::optimizer: return "optimizer";
    case Phase::count: break;
  }
  return "?";
}

void set_phase_profiling(std::function<void()> synchronize) {
  profiler().synchronize = std::move(synchronize);
  reset_phase_totals();
}
bool phase_profiling() { return static_cast<bool>(profiler().synchronize); }
PhaseTotals phase_totals() { return profiler().totals; }
void reset_phase_totals() { profiler().totals = PhaseTotals{}; }

PhaseScope::PhaseScope(Phase p) : phase_(p), active_(phase_profiling()) {
  if (!active_) return;
  profiler().synchronize();
  timer_.reset();
}

PhaseScope::~PhaseScope() {
  if (!active_) return;
  profiler().synchronize();
  profiler().totals.seconds[static_cast<size_t>(phase_)] += timer_.seconds();
}

}  // namespace sy
