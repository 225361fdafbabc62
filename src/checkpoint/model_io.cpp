#include "checkpoint/model_io.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/sha256.h"

namespace sy {
namespace fs = std::filesystem;
using nlohmann::json;

const char* safetensors_dtype(DType d) {
  return d == DType::f64 ? "F64" : d == DType::i32 ? "I32" : "F32";
}

bool is_expert_param(const std::string& name) { return name.find(".experts.") != std::string::npos; }

bool is_router_state(const std::string& name) {
  const std::string suffix = ".moe.router.thresholds";
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

namespace {

void add_router_state(std::map<std::string, SafeTensor>& tensors, const RouterState& state) {
  for (const auto& [name, values] : state)
    tensors[name] = {"F64", {static_cast<int64_t>(values.size())}, values.data(),
                     values.size() * sizeof(double)};
}

std::vector<double> read_router_state(const SafeTensor& t, const std::string& file,
                                      const std::string& name) {
  if (t.dtype != "F64" || t.shape.size() != 1)
    throw Error(ExitCode::checkpoint, "'" + file + "': router state '" + name + "' must be a F64 vector");
  std::vector<double> v(static_cast<size_t>(t.shape[0]));
  std::memcpy(v.data(), t.data, t.bytes);
  return v;
}

// Weights that are NaN or infinite make every number computed from them
// meaningless: refuse them, naming the tensor.
void check_finite(const ParamStore& params, const char* host, const std::string& origin) {
  for (ParamId i = 0; i < params.size(); ++i) {
    const ParamSpec& s = params.spec(i);
    for (int64_t j = 0; j < s.numel; ++j) {
      const double v = params.dtype() == DType::f64
                           ? reinterpret_cast<const double*>(host)[s.offset + j]
                           : reinterpret_cast<const float*>(host)[s.offset + j];
      if (!std::isfinite(v))
        throw Error(ExitCode::checkpoint,
                    fmt::format("'{}': tensor '{}' holds a non-finite value ({} at element {}); "
                                "these weights cannot be evaluated",
                                origin, s.name, v, j));
    }
  }
}

}  // namespace

void write_param_blocks(const std::string& path, const ParamStore& params,
                        const std::vector<const char*>& blocks, const std::vector<std::string>& prefixes,
                        const std::function<bool(const ParamSpec&)>& keep,
                        const std::map<std::string, std::string>& metadata,
                        const RouterState& router_state) {
  std::map<std::string, SafeTensor> tensors;
  const size_t width = dtype_size(params.dtype());
  for (size_t k = 0; k < blocks.size(); ++k)
    for (ParamId i = 0; i < params.size(); ++i) {
      const ParamSpec& s = params.spec(i);
      if (keep && !keep(s)) continue;
      tensors[prefixes[k] + s.name] = {safetensors_dtype(params.dtype()), s.shape,
                                       blocks[k] + s.offset * width,
                                       static_cast<size_t>(s.numel) * width};
    }
  add_router_state(tensors, router_state);
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

std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  std::ifstream in(index_path);
  if (!in) throw Error(ExitCode::checkpoint, "'" + index_path + "' is missing");
  const json doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& what) {
    return Error(ExitCode::checkpoint, "'" + index_path + "' is malformed: " + what);
  };
  if (doc.is_discarded()) throw bad("not valid JSON");
  if (!doc.is_object() || !doc.contains("weight_map") || !doc["weight_map"].is_object())
    throw bad("it has no \"weight_map\" object");
  std::map<std::string, std::string> map;
  for (const auto& [name, file] : doc["weight_map"].items()) {
    if (!file.is_string()) throw bad("tensor '" + name + "' maps to " + file.dump() + ", not a file name");
    const std::string f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
      throw bad("tensor '" + name + "' maps to '" + f + "', not a file of the checkpoint's folder");
    map[name] = f;
  }
  return map;
}

void read_param_blocks(const std::string& dir, const std::string& index_file, const ParamStore& params,
                       const std::vector<char*>& blocks, const std::vector<std::string>& prefixes,
                       RouterState* router_state, bool experts_sharded) {
  const std::string index_path = dir + "/" + index_file;
  const std::map<std::string, std::string> map = read_weight_map(index_path);
  std::map<std::string, std::unique_ptr<SafeTensorsFile>> files;
  const size_t width = dtype_size(params.dtype());
  for (size_t k = 0; k < blocks.size(); ++k)
    for (ParamId i = 0; i < params.size(); ++i) {
      const ParamSpec& s = params.spec(i);
      const std::string name = prefixes[k] + s.name;
      auto entry = map.find(name);
      if (entry == map.end())
        throw Error(ExitCode::checkpoint, "'" + index_path + "' has no tensor '" + name + "'");
      const std::string& file = entry->second;
      auto& f = files[file];
      if (!f) f = std::make_unique<SafeTensorsFile>(dir + "/" + file);
      const SafeTensor& t = f->get(name, safetensors_dtype(params.dtype()), s.shape);
      std::memcpy(blocks[k] + s.offset * width, t.data, t.bytes);
    }
  // Tensors the model does not have mean the files belong to another model.
  const size_t expected = blocks.size() * static_cast<size_t>(params.size());
  if (map.size() != expected)
    for (const auto& [name, file] : map) {
      bool known = false;
      for (size_t k = 0; k < prefixes.size() && !known; ++k)
        known = name.rfind(prefixes[k], 0) == 0 && params.find(name.substr(prefixes[k].size())) >= 0;
      if (known || (experts_sharded && is_expert_param(name))) continue;
      if (router_state && is_router_state(name)) {
        auto& f = files[file];
        if (!f) f = std::make_unique<SafeTensorsFile>(dir + "/" + file);
        auto t = f->tensors().find(name);
        if (t == f->tensors().end())
          throw Error(ExitCode::checkpoint, "'" + dir + "/" + file + "' has no tensor '" + name + "'");
        (*router_state)[name] = read_router_state(t->second, f->path(), name);
        continue;
      }
      throw Error(ExitCode::checkpoint, "'" + index_path + "' maps tensor '" + name +
                                            "', which this model does not have (another config?)");
    }
}

void save_params(const std::string& path, const ParamStore& params,
                 const std::map<std::string, std::string>& metadata, const RouterState& router_state) {
  std::vector<char> host(params.values().bytes());
  params.ops().to_host(host.data(), params.values());
  write_param_blocks(path, params, {host.data()}, {""}, {}, metadata, router_state);
}

void save_params_sharded(const std::string& dir, int shard, const ParamStore& params,
                         const std::map<std::string, std::string>& metadata,
                         const RouterState& router_state) {
  std::vector<char> host(params.values().bytes());
  params.ops().to_host(host.data(), params.values());
  write_param_blocks(dir + "/model-rank-" + std::to_string(shard) + ".safetensors", params,
                     {host.data()}, {""},
                     [&](const ParamSpec& s) { return shard == 0 || s.expert; },
                     metadata, shard == 0 ? router_state : RouterState{});
}

void write_shard_index(const std::string& dir) {
  std::ofstream(dir + "/model.safetensors.index.json") << index_shard_files(dir, "model").dump(2) << "\n";
}

namespace {

// One file's parameters into `host` (laid out like params' values).
RouterState load_params_into(const std::string& path, const ParamStore& params, char* host) {
  const SafeTensorsFile file(path);
  const size_t width = dtype_size(params.dtype());
  for (ParamId i = 0; i < params.size(); ++i) {
    const ParamSpec& s = params.spec(i);
    const SafeTensor& t = file.get(s.name, safetensors_dtype(params.dtype()), s.shape);
    std::memcpy(host + s.offset * width, t.data, t.bytes);
  }
  RouterState state;
  for (const auto& [name, t] : file.tensors()) {
    if (params.find(name) >= 0) continue;
    if (is_router_state(name)) state[name] = read_router_state(t, path, name);
    else
      throw Error(ExitCode::checkpoint, "'" + path + "' holds tensor '" + name +
                                            "', which this model does not have (another config?)");
  }
  return state;
}

std::string manifest_digest(json m) {
  m.erase("manifest_sha256");
  const std::string text = m.dump();
  return sha256_hex(text.data(), text.size());
}

}  // namespace

void write_weights_manifest(const std::string& dir) {
  json files = json::object();
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f == "model.safetensors" || f == "model.safetensors.index.json" ||
        (f.rfind("model-rank-", 0) == 0 && e.path().extension() == ".safetensors"))
      files[f] = sha256_file(e.path().string());
  }
  json m = {{"format", "switchyard-weights"}, {"version", 1}, {"files", files}};
  m["manifest_sha256"] = manifest_digest(m);
  const std::string path = dir + "/weights.json";
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << m.dump(2) << "\n";
    if (!out.flush()) throw Error(ExitCode::checkpoint, "failed writing '" + tmp + "' (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error(ExitCode::checkpoint, "cannot rename '" + tmp + "': " + ec.message());
}

bool verify_weights_manifest(const std::string& dir) {
  const std::string path = dir + "/weights.json";
  std::ifstream in(path);
  if (!in) return false;
  const json m = json::parse(in, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& what) { return Error(ExitCode::checkpoint, "'" + path + "' " + what); };
  if (m.is_discarded() || !m.is_object() || m.value("format", "") != "switchyard-weights" ||
      !m.contains("files") || !m["files"].is_object() || !m.contains("manifest_sha256") ||
      !m["manifest_sha256"].is_string())
    throw bad("is malformed (not a switchyard weights manifest)");
  if (manifest_digest(m) != m["manifest_sha256"].get<std::string>())
    throw bad("fails its own checksum (manifest_sha256): it was edited or is corrupt");
  if (m["files"].empty()) throw bad("lists no weights file");
  for (const auto& [file, sum] : m["files"].items()) {
    if (!sum.is_string() || file.find('/') != std::string::npos) throw bad("has a bad entry '" + file + "'");
    const std::string f = dir + "/" + file;
    if (!fs::exists(f)) throw Error(ExitCode::checkpoint, "weights file '" + f + "' is missing");
    const std::string got = sha256_file(f);
    if (got != sum.get<std::string>())
      throw Error(ExitCode::checkpoint, "weights file '" + f + "' is corrupt: SHA-256 " + got +
                                            ", weights.json records " + sum.get<std::string>());
  }
  return true;
}

RouterState load_params_from_run(const std::string& dir, ParamStore& params) {
  const bool verified = verify_weights_manifest(dir);
  RouterState state;
  std::vector<char> host(params.values().bytes());
  std::string origin;
  if (fs::exists(dir + "/model.safetensors")) {
    origin = dir + "/model.safetensors";
    state = load_params_into(origin, params, host.data());
  } else {
    if (!fs::exists(dir + "/model.safetensors.index.json"))
      throw Error(ExitCode::checkpoint, "'" + dir + "' holds neither model.safetensors nor " +
                                            "model.safetensors.index.json (did the run finish?)");
    origin = dir + "/model.safetensors.index.json";
    read_param_blocks(dir, "model.safetensors.index.json", params, {host.data()}, {""}, &state);
  }
  check_finite(params, host.data(), origin);
  if (!verified)
    log_warn("'{}' has no weights.json (a run of an older version): its weights are not covered by "
             "checksums", dir);
  params.ops().from_host(params.values(), host.data());
  return state;
}

RouterState load_params(const std::string& path, ParamStore& params) {
  std::vector<char> host(params.values().bytes());
  RouterState state = load_params_into(path, params, host.data());
  params.ops().from_host(params.values(), host.data());
  return state;
}

}  // namespace sy
