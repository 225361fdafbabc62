#pragma once
// The process's place in the job. MPI is initialised only when a launcher started
// us (mpirun / mpiexec / srun set OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK;
// SWITCHYARD_MPI=1 forces it): a plain `switchyard ...` is a world of one and
// never touches MPI (whose singleton start-up is slow, and serialises when many
// plain processes start at once, as parallel tests do).
namespace sy {

// Whether a launcher (mpirun, mpiexec, srun) started this process.
bool launched_by_launcher();
void init_process(int* argc, char*** argv);
void finalize_process();
int world_rank();
// This process's rank among the ranks of its node, as the launcher says (Open MPI,
// MPICH / Hydra, SLURM, torchrun-style LOCAL_RANK); 0 when launched alone.
int local_rank();
int world_size();
bool mpi_active();

// How long one collective may wait for its peers before the job ends with exit 6
// (parallel.step_timeout_s; 0: no limit). Set once at start-up.
void set_collective_timeout(double seconds);
double collective_timeout();

// The stream the device backend computes on (a cudaStream_t, opaque here; null: none
// registered, or a CPU backend). Communicators that move device memory order their
// work after it (an event) instead of synchronising the whole device, which would
// also wait for their own collectives still in flight. The newest backend wins.
void set_compute_stream(void* stream);
void* compute_stream();

}  // namespace sy
