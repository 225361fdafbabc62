#pragma once
// A prepared dataset: the folder `switchyard prepare` writes.
//   manifest.json          what is here: vocabulary, tokenizer, splits, checksums
//   tokenizer.model        SentencePiece model
//   <split>-NNNNN.bin      token shards (data/shard.h), split ∈ train, val, test
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/shard.h"

namespace sy {

struct SplitInfo {
  struct Shard {
    std::string file;  // relative to the dataset folder
    std::string sha256;
    int64_t tokens = 0;
    int64_t documents = 0;
  };
  std::vector<Shard> shards;
  int64_t tokens = 0, documents = 0, words = 0;
};

struct Manifest {
  static constexpr int kVersion = 1;
  int64_t vocab_size = 0;
  std::string tokenizer_file, tokenizer_sha256, tokenizer_kind;
  int32_t eos_id = -1, mask_id = -1;
  uint64_t split_seed = 0;
  std::string input;
  std::map<std::string, SplitInfo> splits;
  // prepare.tags: tag names, and per split a file of one int16 per token (an
  // index into tag_names, −1: none), in split order.
  struct TagFile {
    std::string file, sha256;
    int64_t tokens = 0;
  };
  std::vector<std::string> tag_names;
  std::map<std::string, TagFile> tag_files;

  std::string to_json() const;
  // Parses `<dir>/manifest.json`; throws Error(bad_input) naming the file.
  static Manifest load(const std::string& dir);
};

// The shards of one split, opened and checked against the manifest: every file
// present, sizes and counts as recorded, its SHA-256 as recorded (unless
// `verify_checksums` is off), every token id inside the vocabulary.
// The tags of `split` (empty when the dataset has none), checked against the
// manifest; throws Error(bad_input) naming the file.
std::vector<int32_t> load_split_tags(const std::string& dir, const Manifest& m, const std::string& split,
                                     bool verify_checksums = true);

class SplitShards {
 public:
  SplitShards(const std::string& dir, const Manifest& m, const std::string& split,
              bool verify_checksums = true);
  int64_t size() const { return total_; }
  // Copies tokens [start, start+n) of the concatenated shards into out.
  void read(int64_t start, int64_t n, int32_t* out) const;

 private:
  std::vector<ShardReader> shards_;
  std::vector<int64_t> starts_;  // first global token index of each shard
  int64_t total_ = 0;
};

}  // namespace sy
