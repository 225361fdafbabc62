#pragma once
// The GPU ranks' communicator: NCCL for tensors in GPU memory, bootstrapped through
// (and delegating everything host-side to) the MPI communicator it wraps. The
// trainer gets it from ProcessMesh::make when the backend is cuda.
#include <memory>

#include "parallel/communicator.h"

namespace sy {

// `host` must span the same ranks; its broadcast carries NCCL's unique id. Each
// rank must already have chosen its GPU (the CUDA backend does, by local rank).
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> host);

}  // namespace sy
