#pragma once
// Where a training step's time goes: attention, expert GEMMs, routing + dispatch +
// combine, communication, optimizer (the rest of the step is "other"). Off unless
// `switchyard bench` turns it on: a scope then synchronises the device at both ends
// (so asynchronous GPU work is charged to the phase that issued it) and adds its
// wall time to its phase. Scopes of different phases must not nest.
#include <array>
#include <functional>

#include "core/timer.h"

namespace sy {

enum class Phase { attention, expert_gemm, routing, communication, optimizer, count };
const char* phase_name(Phase p);

struct PhaseTotals {
  std::array<double, static_cast<size_t>(Phase::count)> seconds{};
};

// Turns profiling on with the device's synchronize, or off (nullptr).
void set_phase_profiling(std::function<void()> synchronize);
bool phase_profiling();
PhaseTotals phase_totals();
void reset_phase_totals();

class PhaseScope {
 public:
  explicit PhaseScope(Phase p);
  ~PhaseScope();
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  Phase phase_;
  bool active_;
  Timer timer_;
};

}  // namespace sy
