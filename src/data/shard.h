#pragma once
// Token shards: a 64-byte header, the tokens (uint16 when the vocabulary fits,
// else uint32), then a document index of doc_count+1 uint64 token offsets.
//
//   offset  size  field
//   0       8     magic "SYTOKENS"
//   8       4     format version (1)
//   12      4     bytes per token (2 or 4)
//   16      8     vocab size
//   24      8     token count
//   32      8     document count
//   40      24    reserved (0)
//
// Readers memory-map the file and check every field against the file size, so a
// wrong magic, an unknown version or a truncated file is refused with its name.
#include <cstdint>
#include <string>
#include <vector>

namespace sy {

constexpr char kShardMagic[8] = {'S', 'Y', 'T', 'O', 'K', 'E', 'N', 'S'};
constexpr uint32_t kShardVersion = 1;
constexpr size_t kShardHeaderBytes = 64;

// Writes tokens and document boundaries (doc_offsets: doc_count+1 entries, first 0,
// last tokens.size()). Throws Error(bad_input) naming the file on failure.
void write_shard(const std::string& path, const std::vector<int32_t>& tokens,
                 const std::vector<uint64_t>& doc_offsets, int64_t vocab_size);

class ShardReader {
 public:
  explicit ShardReader(const std::string& path);  // throws Error(bad_input)
  ShardReader(ShardReader&& o) noexcept;
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;
  ~ShardReader();

  const std::string& path() const { return path_; }
  int64_t size() const { return count_; }
  int64_t vocab_size() const { return vocab_; }
  int64_t doc_count() const { return docs_; }
  int bytes_per_token() const { return width_; }
  int32_t at(int64_t i) const;
  // Copies tokens [start, start+n) into out.
  void read(int64_t start, int64_t n, int32_t* out) const;
  uint64_t doc_offset(int64_t d) const;  // d in [0, doc_count]
  // Largest token id (a full scan).
  int64_t max_token() const;
  // SHA-256 of the whole file, as manifest.json records it.
  std::string sha256() const;

 private:
  std::string path_;
  const unsigned char* map_ = nullptr;
  size_t map_bytes_ = 0;
  int width_ = 0;
  int64_t vocab_ = 0, count_ = 0, docs_ = 0;
};

}  // namespace sy
