#pragma once
// The CPU backend: OpenBLAS for matrix products, OpenMP for everything else.
// f32 for training, f64 for gradient checks; kernels are templates over both.
#include <memory>

#include "backend/ops.h"

namespace sy {

std::unique_ptr<Ops> make_cpu_ops();

}  // namespace sy
