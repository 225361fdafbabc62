#pragma once
// The CUDA backend (cuBLAS + kernels).
#include <memory>

#include "backend/ops.h"

namespace sy {

// Throws Error(bad_input) when no GPU is visible.
std::unique_ptr<Ops> make_cuda_ops();
// Number of visible CUDA devices (0 when the driver is missing).
int cuda_device_count();

}  // namespace sy
