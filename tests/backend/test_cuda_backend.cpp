// The CUDA backend's start-up: a GPU machine's backend starts, a machine without a
// GPU says so in the runtime's words, and every other start-up error is an error,
// never a skip. (Its ops are checked in the op table: test_backend_ops.cpp.)
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <iostream>
#include <string>
#include <vector>

#include "backend/cuda/cuda_ops.h"
#include "backend/gpu_test.h"
#include "core/errors.h"

namespace sy {
namespace {

// Never skipped: with a GPU the backend starts; without one it says so, in the
// runtime's own words; on a GPU machine whose CUDA cannot start, it names the error.
TEST(CudaBackend, StartsOrSaysWhyNot) {
  const CudaProbe probe = probe_cuda();
  if (probe.state == CudaProbe::State::ok) {
    const auto ops = make_cuda_ops();
    EXPECT_EQ(ops->device(), Device::cuda);
    return;
  }
  try {
    make_cuda_ops();
    FAIL() << "make_cuda_ops succeeded, but the probe said: " << probe.message;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input);
    const std::string what = e.what();
    EXPECT_NE(what.find(probe.state == CudaProbe::State::no_gpu ? "no CUDA device"
                                                                : "CUDA could not start"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find(probe.message), std::string::npos) << what;  // the runtime's own words
  }
}

// The device check of scripts/gpu_check.sh: a GPU is usable, and says what it is.
TEST(CudaDevice, UsableAndNamed) {
  SY_REQUIRE_GPUS(1);
  const auto ops = make_cuda_ops();
  std::cout << "device: " << ops->name() << "\n";
  Buffer buf(*ops, 1000 * sizeof(float));
  const Tensor t = buf.as(DType::f32, {1000});
  ops->fill(t, 3.0);
  std::vector<float> host(1000);
  ops->to_host(host.data(), t);
  EXPECT_EQ(host, std::vector<float>(1000, 3.0f));
  EXPECT_EQ(ops->sum(t), 3000.0);
}

// Only "no device", or no NVIDIA driver at all, mean "no GPU" (a skip); every other
// start-up error of a GPU machine is an error to report.
TEST(CudaBackend, StartUpErrorsAreErrorsNotMissingGpus) {
  using S = CudaProbe::State;
  EXPECT_EQ(classify_cuda_start(cudaSuccess, true), S::ok);
  EXPECT_EQ(classify_cuda_start(cudaErrorNoDevice, true), S::no_gpu);
  EXPECT_EQ(classify_cuda_start(cudaErrorNoDevice, false), S::no_gpu);
  EXPECT_EQ(classify_cuda_start(cudaErrorInsufficientDriver, false), S::no_gpu);
  EXPECT_EQ(classify_cuda_start(cudaErrorInsufficientDriver, true), S::error);  // driver too old
  EXPECT_EQ(classify_cuda_start(cudaErrorStubLibrary, true), S::error);
  EXPECT_EQ(classify_cuda_start(cudaErrorInitializationError, true), S::error);
  EXPECT_EQ(classify_cuda_start(cudaErrorNoKernelImageForDevice, true), S::error);
  EXPECT_EQ(classify_cuda_start(cudaErrorDevicesUnavailable, true), S::error);
}

}  // namespace
}  // namespace sy
