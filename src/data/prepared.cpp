#include "data/prepared.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/errors.h"

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
  } catch (const json::exception& e) {
    throw Error(ExitCode::bad_input, "'" + path + "' is malformed: " + e.what());
  }
  return m;
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
