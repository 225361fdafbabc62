#include "checkpoint/model_io.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>

#include <nlohmann/json.hpp>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/errors.h"

namespace sy {
namespace {
const char* st_dtype(DType d) { return d == DType::f64 ? "F64" : d == DType::i32 ? "I32" : "F32"; }
}  // namespace

void save_params_if(const std::string& path, const ParamStore& params,
                    const std::map<std::string, std::string>& metadata,
                    const std::function<bool(const std::string&)>& keep) {
  std::vector<char> host(params.values().bytes());
  params.ops().to_host(host.data(), params.values());
  std::map<std::string, SafeTensor> tensors;
  const size_t width = dtype_size(params.dtype());
  for (ParamId i = 0; i < params.size(); ++i) {
    const ParamSpec& s = params.spec(i);
    if (!keep(s.name)) continue;
    tensors[s.name] = {st_dtype(params.dtype()), s.shape, host.data() + s.offset * width,
                       static_cast<size_t>(s.numel) * width};
  }
  write_safetensors(path, tensors, metadata);
}

void save_params(const std::string& path, const ParamStore& params,
                 const std::map<std::string, std::string>& metadata) {
  save_params_if(path, params, metadata, [](const std::string&) { return true; });
}

std::string shard_file(int shard) { return "model-rank-" + std::to_string(shard) + ".safetensors"; }

void save_params_sharded(const std::string& dir, int shard, int n_shards, const ParamStore& params,
                         const std::map<std::string, std::string>& metadata) {
  (void)n_shards;
  save_params_if(dir + "/" + shard_file(shard), params, metadata, [&](const std::string& name) {
    return shard == 0 || name.find(".experts.") != std::string::npos;
  });
}

void write_shard_index(const std::string& dir, int n_shards) {
  nlohmann::json index;
  index["metadata"] = {{"format", "switchyard"}};
  for (int s = 0; s < n_shards; ++s) {
    const SafeTensorsFile f(dir + "/" + shard_file(s));
    for (const auto& [name, t] : f.tensors()) index["weight_map"][name] = shard_file(s);
  }
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2) << "\n";
}

void load_params_from_run(const std::string& dir, ParamStore& params) {
  if (std::filesystem::exists(dir + "/model.safetensors"))
    return load_params(dir + "/model.safetensors", params);
  const std::string index_path = dir + "/model.safetensors.index.json";
  std::ifstream in(index_path);
  if (!in)
    throw Error(ExitCode::checkpoint, "'" + dir + "' holds neither model.safetensors nor " +
                                          "model.safetensors.index.json (did the run finish?)");
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ExitCode::checkpoint, "'" + index_path + "' is not valid JSON: " + e.what());
  }
  std::map<std::string, std::unique_ptr<SafeTensorsFile>> files;
  std::vector<char> host(params.values().bytes());
  const size_t width = dtype_size(params.dtype());
  for (ParamId i = 0; i < params.size(); ++i) {
    const ParamSpec& s = params.spec(i);
    if (!index["weight_map"].contains(s.name))
      throw Error(ExitCode::checkpoint, "'" + index_path + "' has no tensor '" + s.name + "'");
    const std::string file = index["weight_map"][s.name].get<std::string>();
    auto& f = files[file];
    if (!f) f = std::make_unique<SafeTensorsFile>(dir + "/" + file);
    const SafeTensor& t = f->get(s.name, st_dtype(params.dtype()), s.shape);
    std::memcpy(host.data() + s.offset * width, t.data, t.bytes);
  }
  params.ops().from_host(params.values(), host.data());
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
