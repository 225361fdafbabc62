// The CUDA backend. The ops themselves arrive with the CUDA issue; for now this
// file proves the toolchain, links cuBLAS, and answers "is there a GPU".
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "backend/cuda/cuda_ops.h"
#include "core/errors.h"

namespace sy {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

std::unique_ptr<Ops> make_cuda_ops() {
  if (cuda_device_count() == 0)
    throw Error(ExitCode::bad_input,
                "backend 'cuda' was asked for, but no CUDA device is visible "
                "(check nvidia-smi and CUDA_VISIBLE_DEVICES), or set backend: cpu");
  throw Error(ExitCode::bad_input,
              "backend 'cuda': this build's CUDA backend has no ops yet; set backend: cpu");
}

}  // namespace sy
