#include "core/process.h"

#include <mpi.h>

#include <atomic>
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

bool launched_by_launcher() { return launched_by_mpi(); }

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

namespace {
std::atomic<double> g_collective_timeout{0.0};
}
void set_collective_timeout(double seconds) { g_collective_timeout = seconds > 0 ? seconds : 0.0; }
double collective_timeout() { return g_collective_timeout; }

namespace {
std::atomic<void*> g_compute_stream{nullptr};
}
void set_compute_stream(void* stream) { g_compute_stream = stream; }
void* compute_stream() { return g_compute_stream; }

int local_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK",
                          "SLURM_LOCALID", "LOCAL_RANK"})
    if (const char* v = std::getenv(var)) {
      char* end = nullptr;
      const long r = std::strtol(v, &end, 10);
      if (end != v && *end == '\0' && r >= 0 && r < (1 << 20)) return static_cast<int>(r);
    }
  return 0;
}
int world_size() { return g_size; }
bool mpi_active() { return g_mpi; }

}  // namespace sy
