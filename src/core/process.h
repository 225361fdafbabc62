#pragma once
// The process's place in the job. MPI is initialised only when a launcher started
// us (mpirun / mpiexec / srun set OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK;
// SWITCHYARD_MPI=1 forces it): a plain `switchyard ...` is a world of one and
// never touches MPI (whose singleton start-up is slow, and serialises when many
// plain processes start at once, as parallel tests do).
namespace sy {

void init_process(int* argc, char*** argv);
void finalize_process();
int world_rank();
int world_size();
bool mpi_active();

}  // namespace sy
