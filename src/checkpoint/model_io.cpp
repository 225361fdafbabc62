#include "checkpoint/model_io.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "core/errors.h"

namespace sy {
namespace fs = std::filesystem;
using nlohmann::json;

const char* safetensors_dtype(DType d) {
  return d == DType::f64 ? "F64" : d == DType::i32 ? "I32" : "F32";
}

bool is_expert_param(const std::string& name) { return name.find(".experts.") != std::string::npos; }

void write_param_blocks(const std::string& path, const ParamStore& params,
                        const std::vector<const char*>& blocks, const std::vector<std::string>& prefixes,
                        const std::function<bool(const std::string&)>& keep,
                        const std::map<std::string, std::string>& metadata) {
  std::map<std::string, SafeTensor> tensors;
  const size_t width = dtype_size(params.dtype());
  for (size_t k = 0; k < blocks.size(); ++k)
    for (ParamId i = 0; i < params.size(); ++i) {
      const ParamSpec& s = params.spec(i);
      if (keep && !keep(s.name)) continue;
      tensors[prefixes[k] + s.name] = {safetensors_dtype(params.dtype()), s.shape,
                                       blocks[k] + s.offset * width,
                                       static_cast<size_t>(s.numel) * width};
    }
  write_safetensors(path, tensors, metadata);
}

json index_shard_files(const std::string& dir, const std::string& prefix) {
  json index;
  index["metadata"] = {{"format", "switchyard"}};
  index["weight_map"] = json::object();
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.rfind(prefix + "-rank-", 0) != 0) continue;
    const SafeTensorsFile file(e.path().string());
    for (const auto& [name, t] : file.tensors()) index["weight_map"][name] = f;
  }
  return index;
}

void read_param_blocks(const std::string& dir, const std::string& index_file, const ParamStore& params,
                       const std::vector<char*>& blocks, const std::vector<std::string>& prefixes) {
  const std::string index_path = dir + "/" + index_file;
  std::ifstream in(index_path);
  if (!in) throw Error(ExitCode::checkpoint, "'" + index_path + "' is missing");
  json map;
  try {
    map = json::parse(in).at("weight_map");
  } catch (const json::exception& e) {
    throw Error(ExitCode::checkpoint, "'" + index_path + "' is malformed: " + e.what());
  }
  std::map<std::string, std::unique_ptr<SafeTensorsFile>> files;
  const size_t width = dtype_size(params.dtype());
  for (size_t k = 0; k < blocks.size(); ++k)
    for (ParamId i = 0; i < params.size(); ++i) {
      const ParamSpec& s = params.spec(i);
      const std::string name = prefixes[k] + s.name;
      if (!map.contains(name))
        throw Error(ExitCode::checkpoint, "'" + index_path + "' has no tensor '" + name + "'");
      const std::string file = map[name].get<std::string>();
      auto& f = files[file];
      if (!f) f = std::make_unique<SafeTensorsFile>(dir + "/" + file);
      const SafeTensor& t = f->get(name, safetensors_dtype(params.dtype()), s.shape);
      std::memcpy(blocks[k] + s.offset * width, t.data, t.bytes);
    }
}

void save_params(const std::string& path, const ParamStore& params,
                 const std::map<std::string, std::string>& metadata) {
  std::vector<char> host(params.values().bytes());
  params.ops().to_host(host.data(), params.values());
  write_param_blocks(path, params, {host.data()}, {""}, {}, metadata);
}

void save_params_sharded(const std::string& dir, int shard, const ParamStore& params,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<char> host(params.values().bytes());
  params.ops().to_host(host.data(), params.values());
  write_param_blocks(dir + "/model-rank-" + std::to_string(shard) + ".safetensors", params,
                     {host.data()}, {""},
                     [&](const std::string& name) { return shard == 0 || is_expert_param(name); },
                     metadata);
}

void write_shard_index(const std::string& dir) {
  std::ofstream(dir + "/model.safetensors.index.json") << index_shard_files(dir, "model").dump(2) << "\n";
}

void load_params_from_run(const std::string& dir, ParamStore& params) {
  if (fs::exists(dir + "/model.safetensors")) return load_params(dir + "/model.safetensors", params);
  if (!fs::exists(dir + "/model.safetensors.index.json"))
    throw Error(ExitCode::checkpoint, "'" + dir + "' holds neither model.safetensors nor " +
                                          "model.safetensors.index.json (did the run finish?)");
  std::vector<char> host(params.values().bytes());
  read_param_blocks(dir, "model.safetensors.index.json", params, {host.data()}, {""});
  params.ops().from_host(params.values(), host.data());
}

void load_params(const std::string& path, ParamStore& params) {
  const SafeTensorsFile file(path);
  std::vector<char> host(params.values().bytes());
  const size_t width = dtype_size(params.dtype());
  for (ParamId i = 0; i < params.size(); ++i) {
    const ParamSpec& s = params.spec(i);
    const SafeTensor& t = file.get(s.name, safetensors_dtype(params.dtype()), s.shape);
    std::memcpy(host.data() + s.offset * width, t.data, t.bytes);
  }
  for (const auto& [name, t] : file.tensors())
    if (params.find(name) < 0)
      throw Error(ExitCode::checkpoint, "'" + path + "' holds tensor '" + name +
                                            "', which this model does not have (another config?)");
  params.ops().from_host(params.values(), host.data());
}

}  // namespace sy
