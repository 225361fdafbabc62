#pragma once
// For tests that need GPUs: skip only on a machine that has none (reported as
// "skipped: no GPU", which ctest counts as skipped and gpu_check.sh as a failed
// stage); fail, with the runtime's own error, when CUDA cannot start on a GPU machine.
#include <gtest/gtest.h>

#include "backend/cuda/cuda_ops.h"

// In a void function (a test body or SetUp): returns unless `n` GPUs are usable.
#define SY_REQUIRE_GPUS(n)                                                                   \
  do {                                                                                       \
    const ::sy::CudaProbe sy_probe_ = ::sy::probe_cuda();                                    \
    if (sy_probe_.state == ::sy::CudaProbe::State::error)                                    \
      FAIL() << "CUDA could not start: " << sy_probe_.message;                               \
    if (sy_probe_.devices < (n))                                                             \
      GTEST_SKIP() << "skipped: no GPU (" << sy_probe_.devices << " usable, " << (n)         \
                   << " needed" << (sy_probe_.message.empty() ? "" : ": ")                   \
                   << sy_probe_.message << ")";                                              \
  } while (0)
