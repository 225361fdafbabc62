#include "train/faults.h"

#include <cstdio>
#include <cstdlib>

#include "core/errors.h"

namespace sy {

void maybe_inject_fault(int rank, int64_t step) {
  static const char* spec = std::getenv("SWITCHYARD_INJECT_FAULT");
  if (!spec) return;
  int fault_rank = -1;
  long long fault_step = -1;
  if (std::sscanf(spec, "rank=%d,step=%lld", &fault_rank, &fault_step) != 2)
    fatalf(ExitCode::bad_input, "SWITCHYARD_INJECT_FAULT='{}': expected rank=R,step=S", spec);
  if (rank == fault_rank && step == fault_step)
    fatalf(ExitCode::internal, "injected fault at step {} (SWITCHYARD_INJECT_FAULT)", step);
}

}  // namespace sy
