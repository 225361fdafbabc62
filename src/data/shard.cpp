#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "core/errors.h"
#include "core/sha256.h"

namespace sy {
namespace {

template <class T>
void put(unsigned char* p, T v) {
  std::memcpy(p, &v, sizeof v);
}
template <class T>
T get(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

[[noreturn]] void bad_shard(const std::string& path, const std::string& what) {
  throw Error(ExitCode::bad_input, "token shard '" + path + "': " + what +
                                       " (re-run `switchyard prepare` to rebuild the shards)");
}

}  // namespace

void write_shard(const std::string& path, const std::vector<int32_t>& tokens,
                 const std::vector<uint64_t>& doc_offsets, int64_t vocab_size) {
  const int width = vocab_size <= 65536 ? 2 : 4;
  unsigned char header[kShardHeaderBytes] = {};
  std::memcpy(header, kShardMagic, 8);
  put<uint32_t>(header + 8, kShardVersion);
  put<uint32_t>(header + 12, static_cast<uint32_t>(width));
  put<uint64_t>(header + 16, static_cast<uint64_t>(vocab_size));
  put<uint64_t>(header + 24, tokens.size());
  put<uint64_t>(header + 32, doc_offsets.empty() ? 0 : doc_offsets.size() - 1);
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(ExitCode::bad_input, "cannot write token shard '" + tmp + "'");
  bool ok = std::fwrite(header, 1, sizeof header, f) == sizeof header;
  if (width == 2) {
    std::vector<uint16_t> narrow(tokens.begin(), tokens.end());
    ok = ok && std::fwrite(narrow.data(), 2, narrow.size(), f) == narrow.size();
  } else {
    ok = ok && std::fwrite(tokens.data(), 4, tokens.size(), f) == tokens.size();
  }
  ok = ok && std::fwrite(doc_offsets.data(), 8, doc_offsets.size(), f) == doc_offsets.size();
  ok = (std::fflush(f) == 0) && ok && fsync(fileno(f)) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(ExitCode::bad_input, "failed writing token shard '" + path + "' (disk full?)");
}

ShardReader::ShardReader(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) bad_shard(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  map_bytes_ = static_cast<size_t>(st.st_size);
  if (map_bytes_ < kShardHeaderBytes) {
    ::close(fd);
    bad_shard(path, "truncated: " + std::to_string(map_bytes_) + " bytes, shorter than the " +
                        std::to_string(kShardHeaderBytes) + "-byte header");
  }
  void* m = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) bad_shard(path, "mmap failed");
  map_ = static_cast<const unsigned char*>(m);
  if (std::memcmp(map_, kShardMagic, 8) != 0) bad_shard(path, "wrong magic at byte 0 (not a switchyard token shard)");
  const uint32_t version = get<uint32_t>(map_ + 8);
  if (version != kShardVersion)
    bad_shard(path, "format version " + std::to_string(version) + " at byte 8; this build reads version " +
                        std::to_string(kShardVersion));
  width_ = static_cast<int>(get<uint32_t>(map_ + 12));
  if (width_ != 2 && width_ != 4) bad_shard(path, "bytes per token " + std::to_string(width_) + " at byte 12 (expected 2 or 4)");
  vocab_ = static_cast<int64_t>(get<uint64_t>(map_ + 16));
  count_ = static_cast<int64_t>(get<uint64_t>(map_ + 24));
  docs_ = static_cast<int64_t>(get<uint64_t>(map_ + 32));
  const unsigned __int128 want = kShardHeaderBytes + static_cast<unsigned __int128>(count_) * width_ +
                                 static_cast<unsigned __int128>(docs_ + 1) * 8;
  if (want != map_bytes_)
    bad_shard(path, "size " + std::to_string(map_bytes_) + " bytes disagrees with its header (" +
                        std::to_string(count_) + " tokens, " + std::to_string(docs_) +
                        " documents → " + std::to_string(static_cast<uint64_t>(want)) +
                        " bytes): truncated or corrupt");
  if (doc_offset(docs_) != static_cast<uint64_t>(count_))
    bad_shard(path, "document index does not end at the token count");
}

ShardReader::ShardReader(ShardReader&& o) noexcept
    : path_(std::move(o.path_)), map_(o.map_), map_bytes_(o.map_bytes_), width_(o.width_),
      vocab_(o.vocab_), count_(o.count_), docs_(o.docs_) {
  o.map_ = nullptr;
}

ShardReader::~ShardReader() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
}

int32_t ShardReader::at(int64_t i) const {
  const unsigned char* p = map_ + kShardHeaderBytes + i * width_;
  return width_ == 2 ? static_cast<int32_t>(get<uint16_t>(p)) : get<int32_t>(p);
}

void ShardReader::read(int64_t start, int64_t n, int32_t* out) const {
  for (int64_t i = 0; i < n; ++i) out[i] = at(start + i);
}

uint64_t ShardReader::doc_offset(int64_t d) const {
  return get<uint64_t>(map_ + kShardHeaderBytes + count_ * width_ + d * 8);
}

int64_t ShardReader::max_token() const {
  int64_t mx = -1;
  for (int64_t i = 0; i < count_; ++i) mx = std::max<int64_t>(mx, at(i));
  return mx;
}

std::string ShardReader::sha256() const { return sha256_hex(map_, map_bytes_); }

}  // namespace sy
