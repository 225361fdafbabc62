#pragma once
// The CUDA backend (cuBLAS + kernels).
#include <memory>
#include <string>

#include "backend/ops.h"

namespace sy {

// What the CUDA runtime finds on this machine.
struct CudaProbe {
  enum class State {
    ok,      // `devices` GPUs are usable
    no_gpu,  // a machine without a GPU: no device visible, or no NVIDIA driver at all
    error,   // a GPU machine whose CUDA cannot start (driver too old, broken install...)
  };
  State state = State::no_gpu;
  int devices = 0;
  std::string message;  // for no_gpu and error: the runtime's own words, and the context
};
CudaProbe probe_cuda();
// The rule behind probe_cuda(), on a cudaError_t value: only "no device", or "no
// driver" on a machine with no NVIDIA driver installed, mean no GPU; every other
// start-up error is an error to report.
CudaProbe::State classify_cuda_start(int cuda_error, bool driver_installed);

// Number of usable CUDA devices (0 on a machine without a GPU). Throws
// Error(bad_input) with the runtime's error when CUDA fails to start on a GPU machine.
int cuda_device_count();
// This rank's GPU (its local rank modulo the devices seen). Throws Error(bad_input)
// when there is none, saying why.
std::unique_ptr<Ops> make_cuda_ops();

}  // namespace sy
