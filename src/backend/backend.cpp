#include "backend/ops.h"

#include "backend/cpu/cpu_ops.h"
#include "core/errors.h"
#ifdef SWITCHYARD_CUDA
#include "backend/cuda/cuda_ops.h"
#endif

namespace sy {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::gelu: return "gelu";
    case Activation::silu: return "silu";
    case Activation::relu: return "relu";
  }
  return "?";
}

const char* norm_name(NormKind n) { return n == NormKind::layernorm ? "layernorm" : "rmsnorm"; }

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  throw Error(ExitCode::bad_input, "unknown backend '" + name + "' (expected cpu or cuda)");
}

std::unique_ptr<Ops> make_ops(Device device) {
  if (device == Device::cpu) return make_cpu_ops();
#ifdef SWITCHYARD_CUDA
  return make_cuda_ops();
#else
  throw Error(ExitCode::bad_input,
              "backend 'cuda' was asked for, but this switchyard was built without CUDA; "
              "rebuild with -DSWITCHYARD_CUDA=ON on a machine with nvcc, or set backend: cpu");
#endif
}

}  // namespace sy
