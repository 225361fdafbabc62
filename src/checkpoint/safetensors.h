#pragma once
// The safetensors format (Hugging Face): an 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {..}}, then the raw little-endian tensor bytes. Readable by any safetensors
// reader (Python: safetensors, or scripts/ with numpy alone).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sy {

struct SafeTensor {
  std::string dtype;           // "F32", "F64", "I32", ...
  std::vector<int64_t> shape;
  const void* data = nullptr;  // writer: the bytes to write; reader: into the file image
  size_t bytes = 0;
};

// Writes `tensors` (in name order) to `path` via a temporary file, fsync and rename.
// Throws Error(checkpoint) on I/O failure.
void write_safetensors(const std::string& path, const std::map<std::string, SafeTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A file read whole and checked: header length and JSON, dtypes, shapes agreeing
// with byte counts, offsets inside the file and not overlapping. Problems throw
// Error(checkpoint) naming the file (and tensor).
class SafeTensorsFile {
 public:
  explicit SafeTensorsFile(const std::string& path);
  const std::map<std::string, SafeTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The tensor `name`, checked to have `dtype` and `shape`.
  const SafeTensor& get(const std::string& name, const std::string& dtype,
                        const std::vector<int64_t>& shape) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<char> bytes_;
  std::map<std::string, SafeTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

size_t safetensors_dtype_size(const std::string& dtype);  // 0 if unknown

}  // namespace sy
