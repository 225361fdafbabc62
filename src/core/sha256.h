#pragma once
// SHA-256 (FIPS 180-4) for file checksums in manifests and checkpoints.
#include <cstddef>
#include <cstdint>
#include <string>

namespace sy {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::string hex();  // finalises; call once

 private:
  void block(const unsigned char* p);
  uint32_t h_[8];
  unsigned char buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(const void* data, size_t n);
// Hex digest of a file's bytes; throws Error(bad_input) naming the file if unreadable.
std::string sha256_file(const std::string& path);

}  // namespace sy
