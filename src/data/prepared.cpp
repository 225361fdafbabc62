#include "data/prepared.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/sha256.h"

namespace sy {
using nlohmann::json;

std::string Manifest::to_json() const {
  json j;
  j["format"] = "switchyard-prepared";
  j["version"] = kVersion;
  j["vocab_size"] = vocab_size;
  j["tokenizer"] = {{"file", tokenizer_file}, {"sha256", tokenizer_sha256},
                    {"kind", tokenizer_kind}, {"eos_id", eos_id}, {"mask_id", mask_id}};
  j["split_seed"] = split_seed;
  j["input"] = input;
  for (const auto& [name, s] : splits) {
    json shards = json::array();
    for (const auto& sh : s.shards)
      shards.push_back({{"file", sh.file}, {"sha256", sh.sha256}, {"tokens", sh.tokens},
                        {"documents", sh.documents}});
    j["splits"][name] = {{"tokens", s.tokens}, {"documents", s.documents}, {"words", s.words},
                         {"shards", shards}};
  }
  if (!tag_names.empty()) {
    j["tags"]["names"] = tag_names;
    for (const auto& [split, f] : tag_files)
      j["tags"]["files"][split] = {{"file", f.file}, {"sha256", f.sha256}, {"tokens", f.tokens}};
  }
  return j.dump(2) + "\n";
}

Manifest Manifest::load(const std::string& dir) {
  const std::string path = dir + "/manifest.json";
  std::ifstream in(path);
  if (!in)
    throw Error(ExitCode::bad_input, "data.path: no manifest at '" + path +
                                         "' (run `switchyard prepare --config ...` first)");
  Manifest m;
  try {
    const json j = json::parse(in);
    if (j.value("format", "") != "switchyard-prepared")
      throw Error(ExitCode::bad_input, "'" + path + "' is not a switchyard dataset manifest");
    if (j.at("version").get<int>() != kVersion)
      throw Error(ExitCode::bad_input, "'" + path + "': manifest version " +
                                           j.at("version").dump() + ", this build reads " +
                                           std::to_string(kVersion) + "; re-run prepare");
    m.vocab_size = j.at("vocab_size").get<int64_t>();
    const json& t = j.at("tokenizer");
    m.tokenizer_file = t.at("file").get<std::string>();
    m.tokenizer_sha256 = t.at("sha256").get<std::string>();
    m.tokenizer_kind = t.at("kind").get<std::string>();
    m.eos_id = t.at("eos_id").get<int32_t>();
    m.mask_id = t.at("mask_id").get<int32_t>();
    m.split_seed = j.at("split_seed").get<uint64_t>();
    m.input = j.at("input").get<std::string>();
    for (const auto& [name, s] : j.at("splits").items()) {
      SplitInfo info;
      info.tokens = s.at("tokens").get<int64_t>();
      info.documents = s.at("documents").get<int64_t>();
      info.words = s.at("words").get<int64_t>();
      for (const json& sh : s.at("shards"))
        info.shards.push_back({sh.at("file").get<std::string>(), sh.at("sha256").get<std::string>(),
                               sh.at("tokens").get<int64_t>(), sh.at("documents").get<int64_t>()});
      m.splits[name] = info;
    }
    if (j.contains("tags")) {
      m.tag_names = j["tags"].at("names").get<std::vector<std::string>>();
      for (const auto& [split, f] : j["tags"].at("files").items())
        m.tag_files[split] = {f.at("file").get<std::string>(), f.at("sha256").get<std::string>(),
                              f.at("tokens").get<int64_t>()};
    }
  } catch (const json::exception& e) {
    throw Error(ExitCode::bad_input, "'" + path + "' is malformed: " + e.what());
  }
  return m;
}

std::vector<int32_t> load_split_tags(const std::string& dir, const Manifest& m, const std::string& split,
                                     bool verify_checksums) {
  std::vector<int32_t> out;
  const auto it = m.tag_files.find(split);
  if (it == m.tag_files.end()) return out;
  const std::string path = dir + "/" + it->second.file;
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof())
    throw Error(ExitCode::bad_input, "cannot read the tag file '" + path + "' that manifest.json names");
  const auto split_tokens = m.splits.count(split) ? m.splits.at(split).tokens : -1;
  if (static_cast<int64_t>(bytes.size()) != 2 * it->second.tokens || it->second.tokens != split_tokens)
    throw Error(ExitCode::bad_input,
                fmt::format("tag file '{}' holds {} bytes; manifest.json records {} tags for a split of {} "
                            "tokens (2 bytes each): the dataset was changed after prepare",
                            path, bytes.size(), it->second.tokens, split_tokens));
  if (verify_checksums && sha256_hex(bytes.data(), bytes.size()) != it->second.sha256)
    throw Error(ExitCode::bad_input, "tag file '" + path + "' does not match its SHA-256 in manifest.json: "
                                     "it was rewritten after prepare");
  out.resize(bytes.size() / 2);
  const int64_t names = static_cast<int64_t>(m.tag_names.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const auto lo = static_cast<uint8_t>(bytes[2 * i]), hi = static_cast<uint8_t>(bytes[2 * i + 1]);
    out[i] = static_cast<int16_t>(static_cast<uint16_t>(lo | (hi << 8)));
    if (out[i] < -1 || out[i] >= names)
      throw Error(ExitCode::bad_input, fmt::format("tag file '{}': tag {} at token {} is outside [-1, {})",
                                                   path, out[i], i, names));
  }
  return out;
}

SplitShards::SplitShards(const std::string& dir, const Manifest& m, const std::string& split,
                         bool verify_checksums) {
  auto it = m.splits.find(split);
  if (it == m.splits.end() || it->second.tokens == 0)
    throw Error(ExitCode::bad_input, "dataset '" + dir + "' has no '" + split +
                                         "' split (set prepare.val_fraction / test_fraction and re-run prepare)");
  for (const SplitInfo::Shard& sh : it->second.shards) {
    ShardReader r(dir + "/" + sh.file);
    if (r.size() != sh.tokens || r.doc_count() != sh.documents)
      throw Error(ExitCode::bad_input,
                  fmt::format("token shard '{}' holds {} tokens in {} documents, but manifest.json "
                              "records {} in {}: the dataset was changed after prepare",
                              r.path(), r.size(), r.doc_count(), sh.tokens, sh.documents));
    if (r.vocab_size() != m.vocab_size)
      throw Error(ExitCode::bad_input,
                  fmt::format("token shard '{}' has vocabulary {}, manifest.json {}", r.path(),
                              r.vocab_size(), m.vocab_size));
    if (verify_checksums && r.sha256() != sh.sha256)
      throw Error(ExitCode::bad_input,
                  fmt::format("token shard '{}' does not match manifest.json: SHA-256 {}, recorded "
                              "{}: it was rewritten after prepare (re-run prepare, or restore the "
                              "file; data.verify_checksums: false skips this check)",
                              r.path(), r.sha256(), sh.sha256));
    // Ids are stored unsigned: one beyond int32's range reads as negative.
    for (int64_t i = 0; i < r.size(); ++i) {
      const int32_t id = r.at(i);
      if (id < 0 || id >= m.vocab_size)
        throw Error(ExitCode::bad_input,
                    fmt::format("token shard '{}': token id {} at token {} (byte offset {}) is "
                                "outside the vocabulary [0, {})",
                                r.path(), id < 0 ? static_cast<int64_t>(static_cast<uint32_t>(id)) : id,
                                i, kShardHeaderBytes + i * r.bytes_per_token(), m.vocab_size));
    }
    starts_.push_back(total_);
    total_ += r.size();
    shards_.push_back(std::move(r));
  }
}

void SplitShards::read(int64_t start, int64_t n, int32_t* out) const {
  while (n > 0) {
    const size_t s = static_cast<size_t>(
        std::upper_bound(starts_.begin(), starts_.end(), start) - starts_.begin() - 1);
    const int64_t local = start - starts_[s];
    const int64_t take = std::min(n, shards_[s].size() - local);
    shards_[s].read(local, take, out);
    start += take, out += take, n -= take;
  }
}

}  // namespace sy
