#include "core/errors.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>

#include "core/log.h"

namespace sy {

void fatal(ExitCode code, const std::string& message) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  int rank = 0, world = 1;
  if (initialized && !finalized) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
  }
  log_error("fatal (rank {} of {}, exit code {}): {}", rank, world, static_cast<int>(code),
            message);
  flush_logs();
  std::fflush(stdout);
  std::fflush(stderr);
  if (initialized && !finalized && world > 1) MPI_Abort(MPI_COMM_WORLD, static_cast<int>(code));
  std::_Exit(static_cast<int>(code));
}

}  // namespace sy
