#include "checkpoint/model_io.h"

#include <cstring>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/errors.h"

namespace sy {
namespace {
const char* st_dtype(DType d) { return d == DType::f64 ? "F64" : d == DType::i32 ? "I32" : "F32"; }
}  // namespace

void save_params(const std::string& path, const ParamStore& params,
                 const std::map<std::string, std::string>& metadata) {
  std::vector<char> host(params.values().bytes());
  params.ops().to_host(host.data(), params.values());
  std::map<std::string, SafeTensor> tensors;
  const size_t width = dtype_size(params.dtype());
  for (ParamId i = 0; i < params.size(); ++i) {
    const ParamSpec& s = params.spec(i);
    tensors[s.name] = {st_dtype(params.dtype()), s.shape, host.data() + s.offset * width,
                       static_cast<size_t>(s.numel) * width};
  }
  write_safetensors(path, tensors, metadata);
}

void load_params(const std::string& path, ParamStore& params) {
  const SafeTensorsFile file(path);
  std::vector<char> host(params.values().bytes());
  const size_t width = dtype_size(params.dtype());
  for (ParamId i = 0; i < params.size(); ++i) {
    const ParamSpec& s = params.spec(i);
    const SafeTensor& t = file.get(s.name, st_dtype(params.dtype()), s.shape);
    std::memcpy(host.data() + s.offset * width, t.data, t.bytes);
  }
  for (const auto& [name, t] : file.tensors())
    if (params.find(name) < 0)
      throw Error(ExitCode::checkpoint, "'" + path + "' holds tensor '" + name +
                                            "', which this model does not have (another config?)");
  params.ops().from_host(params.values(), host.data());
}

}  // namespace sy
