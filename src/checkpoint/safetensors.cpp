#include "checkpoint/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/errors.h"

namespace sy {
using nlohmann::json;

size_t safetensors_dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL") return 1;
  return 0;
}

void write_safetensors(const std::string& path, const std::map<std::string, SafeTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes}}};
    offset += t.bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const uint64_t n = text.size();
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(ExitCode::checkpoint, "cannot write '" + tmp + "'");
  bool ok = std::fwrite(&n, 8, 1, f) == 1 && std::fwrite(text.data(), 1, n, f) == n;
  for (const auto& [name, t] : tensors) ok = ok && std::fwrite(t.data, 1, t.bytes, f) == t.bytes;
  ok = std::fflush(f) == 0 && ok && fsync(fileno(f)) == 0;
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(ExitCode::checkpoint, "failed writing '" + path + "' (disk full?)");
}

SafeTensorsFile::SafeTensorsFile(const std::string& path) : path_(path) {
  auto bad = [&](const std::string& what) {
    return Error(ExitCode::checkpoint, "'" + path + "': " + what);
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad("cannot open (missing?)");
  bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (bytes_.size() < 8) throw bad("truncated: " + std::to_string(bytes_.size()) + " bytes");
  uint64_t n = 0;
  std::memcpy(&n, bytes_.data(), 8);
  if (n > bytes_.size() - 8) throw bad("header length " + std::to_string(n) + " exceeds the file");
  json header;
  try {
    header = json::parse(bytes_.begin() + 8, bytes_.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const json::exception& e) {
    throw bad(std::string("header is not valid JSON: ") + e.what());
  }
  const size_t data_size = bytes_.size() - 8 - n;
  const char* data = bytes_.data() + 8 + n;
  std::vector<std::pair<size_t, size_t>> spans;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [k, m] : v.items()) metadata_[k] = m.is_string() ? m.get<std::string>() : m.dump();
      continue;
    }
    SafeTensor t;
    try {
      t.dtype = v.at("dtype").get<std::string>();
      t.shape = v.at("shape").get<std::vector<int64_t>>();
      const auto off = v.at("data_offsets").get<std::vector<size_t>>();
      if (off.size() != 2 || off[0] > off[1] || off[1] > data_size)
        throw bad("tensor '" + name + "': data offsets outside the file (truncated?)");
      t.data = data + off[0];
      t.bytes = off[1] - off[0];
      spans.push_back({off[0], off[1]});
    } catch (const json::exception& e) {
      throw bad("tensor '" + name + "': malformed entry: " + e.what());
    }
    const size_t width = safetensors_dtype_size(t.dtype);
    if (width == 0) throw bad("tensor '" + name + "': unknown dtype '" + t.dtype + "'");
    size_t count = 1;
    for (int64_t d : t.shape) count *= static_cast<size_t>(d);
    if (count * width != t.bytes)
      throw bad("tensor '" + name + "': shape and dtype need " + std::to_string(count * width) +
                " bytes, its offsets give " + std::to_string(t.bytes));
    tensors_[name] = t;
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) throw bad("tensors overlap in the data section");
}

const SafeTensor& SafeTensorsFile::get(const std::string& name, const std::string& dtype,
                                       const std::vector<int64_t>& shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw Error(ExitCode::checkpoint, "'" + path_ + "' has no tensor '" + name + "'");
  if (it->second.dtype != dtype || it->second.shape != shape)
    throw Error(ExitCode::checkpoint,
                fmt::format("'{}': tensor '{}' is {} {}, expected {} {}", path_, name,
                            it->second.dtype, fmt::join(it->second.shape, "×"), dtype,
                            fmt::join(shape, "×")));
  return it->second;
}

}  // namespace sy
