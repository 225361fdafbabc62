#pragma once
// Fault injection for tests of the failure paths. SWITCHYARD_INJECT_FAULT names a
// rank and a step ("rank=1,step=3"); that rank dies there through the fatal path,
// as a real failure would ("…,stall": it hangs instead; "…,term": it receives
// SIGTERM; "…,nan": its gradients turn NaN; "…,drift": one of its weights changes
// after the update, as silent corruption would). Unset (always, outside tests):
// nothing happens.
#include <cstdint>

namespace sy {

void maybe_inject_fault(int rank, int64_t step);
// "rank=R,step=S,KIND" with KIND `what` ("nan", "drift"): true on that rank at that
// step (the trainer poisons a gradient, or nudges a weight).
bool injected(int rank, int64_t step, const char* what);
// SWITCHYARD_STALL="R@PHASE": rank R stops answering (sleeps forever) when it
// reaches PHASE: start (after MPI start-up), restore, final_save, finalize.
// "R@PHASE:S": it is only slow there, S seconds.
void maybe_stall(int rank, const char* phase);

}  // namespace sy
