#include "core/process.h"

#include <mpi.h>

#include <cstdlib>
#include <cstring>

namespace sy {
namespace {
bool g_mpi = false;
int g_rank = 0, g_size = 1;

bool launched_by_mpi() {
  const char* force = std::getenv("SWITCHYARD_MPI");
  if (force) return std::strcmp(force, "0") != 0;
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}
}  // namespace

void init_process(int* argc, char*** argv) {
  if (!launched_by_mpi()) return;
  MPI_Init(argc, argv);
  g_mpi = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
}

void finalize_process() {
  int finalized = 0;
  if (g_mpi && (MPI_Finalized(&finalized), !finalized)) MPI_Finalize();
}

int world_rank() { return g_rank; }
int world_size() { return g_size; }
bool mpi_active() { return g_mpi; }

}  // namespace sy
