#include "data/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/errors.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "core/timer.h"
#include "data/corpus.h"
#include "data/tokenizer.h"

namespace sy {
namespace fs = std::filesystem;
namespace {

const char* kSplits[] = {"train", "val", "test"};

// split[d] ∈ {0 train, 1 val, 2 test}, by a seeded shuffle of the documents.
std::vector<int> assign_splits(int64_t n_docs, const PrepareConfig& p, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n_docs));
  for (int64_t i = 0; i < n_docs; ++i) order[i] = i;
  const RngStream rng{seed, hash64("prepare.split")};
  for (int64_t i = n_docs - 1; i > 0; --i)
    std::swap(order[i], order[rng.below(static_cast<uint64_t>(i), static_cast<uint64_t>(i + 1))]);
  const int64_t n_val = std::llround(p.val_fraction * n_docs);
  const int64_t n_test = std::llround(p.test_fraction * n_docs);
  if (n_docs - n_val - n_test < 1 || (p.val_fraction > 0 && n_val == 0))
    throw Error(ExitCode::bad_input,
                fmt::format("prepare.input '{}': {} documents are too few to split into train / "
                            "val / test at fractions {} / {}; give more documents (separate them "
                            "by blank lines) or lower the fractions",
                            p.input, n_docs, p.val_fraction, p.test_fraction));
  std::vector<int> split(static_cast<size_t>(n_docs), 0);
  for (int64_t i = 0; i < n_val; ++i) split[order[i]] = 1;
  for (int64_t i = n_val; i < n_val + n_test; ++i) split[order[i]] = 2;
  return split;
}

std::string make_tokenizer(const PrepareConfig& p, const std::vector<Document>& docs,
                           const std::vector<int>& split, const std::string& out_dir,
                           int64_t vocab_size, int threads) {
  const std::string model = out_dir + "/tokenizer.model";
  if (!p.tokenizer_model.empty()) {
    std::error_code ec;
    fs::copy_file(p.tokenizer_model, model, fs::copy_options::overwrite_existing, ec);
    if (ec)
      throw Error(ExitCode::bad_input, "prepare.tokenizer_model: cannot copy '" +
                                           p.tokenizer_model + "': " + ec.message());
    return model;
  }
  const std::string text = out_dir + "/tokenizer-input.txt";
  {
    std::ofstream out(text);
    for (size_t d = 0; d < docs.size(); ++d)
      if (split[d] == 0) out << docs[d].text << '\n';
  }
  TokenizerTraining t;
  t.kind = p.tokenizer;
  t.vocab_size = vocab_size;
  t.character_coverage = p.character_coverage;
  t.threads = threads;
  Timer timer;
  Tokenizer::train(text, out_dir + "/tokenizer", t);
  fs::remove(text);
  log_info("prepare: trained a {}-piece {} tokenizer in {:.1f}s", vocab_size,
           p.tokenizer == TokenizerKind::unigram ? "unigram" : "BPE", timer.seconds());
  return model;
}

// prepare.tags: the tag documents, checked to match the input's document by
// document and word by word.
std::vector<Document> read_tags(const PrepareConfig& p, const std::vector<Document>& docs) {
  if (p.tags.empty()) return {};
  std::vector<Document> tags = read_corpus(p.tags, p.format);
  if (tags.size() != docs.size())
    throw Error(ExitCode::bad_input,
                fmt::format("prepare.tags '{}' holds {} documents, prepare.input '{}' {}: the tags must "
                            "follow the input document by document, one tag per word",
                            p.tags, tags.size(), p.input, docs.size()));
  for (size_t d = 0; d < docs.size(); ++d)
    if (tags[d].words != docs[d].words)
      throw Error(ExitCode::bad_input,
                  fmt::format("prepare.tags: '{}' has {} tags but its document '{}' has {} words",
                              tags[d].origin, tags[d].words, docs[d].origin, docs[d].words));
  return tags;
}

// Gives every token of one encoded document its word's tag: a piece starting
// with ▁ starts the next word (SentencePiece splits at whitespace, so a word never
// shares a piece with the next). Returns false, leaving −1, when the pieces do not
// make up exactly the document's words.
bool tag_tokens(const Tokenizer& tok, const int32_t* ids, size_t n, const std::string& tag_text,
                std::map<std::string, int16_t>& names, std::vector<std::string>& name_list, int16_t* out) {
  std::vector<int16_t> word_tags;
  size_t i = 0;
  while (i < tag_text.size()) {
    while (i < tag_text.size() && std::isspace(static_cast<unsigned char>(tag_text[i]))) ++i;
    size_t j = i;
    while (j < tag_text.size() && !std::isspace(static_cast<unsigned char>(tag_text[j]))) ++j;
    if (j == i) break;
    const std::string name = tag_text.substr(i, j - i);
    auto [it, fresh] = names.try_emplace(name, static_cast<int16_t>(name_list.size()));
    if (fresh) {
      if (name_list.size() >= 32767)
        throw Error(ExitCode::bad_input, "prepare.tags: more than 32767 distinct tags");
      name_list.push_back(name);
    }
    word_tags.push_back(it->second);
    i = j;
  }
  int64_t word = -1;
  for (size_t k = 0; k < n; ++k) {
    if (tok.piece(ids[k]).rfind("\xE2\x96\x81", 0) == 0) ++word;
    out[k] = word >= 0 && word < static_cast<int64_t>(word_tags.size()) ? word_tags[word] : -1;
  }
  if (word + 1 == static_cast<int64_t>(word_tags.size())) return true;
  std::fill(out, out + n, int16_t{-1});
  return false;
}

void write_tags(const std::string& path, const std::vector<int16_t>& tags) {
  std::string bytes(tags.size() * 2, '\0');
  for (size_t i = 0; i < tags.size(); ++i) {
    const auto v = static_cast<uint16_t>(tags[i]);
    bytes[2 * i] = static_cast<char>(v & 0xff);
    bytes[2 * i + 1] = static_cast<char>(v >> 8);
  }
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.flush()) throw Error(ExitCode::bad_input, "cannot write '" + path + "' (disk full?)");
}

}  // namespace

// A prepared dataset is never rewritten in place: runs memory-map its shards (a
// shard truncated under a running trainer kills it) and trust its manifest. It is
// built in a temporary folder beside data.path and renamed into place at the end,
// so an interrupted prepare leaves nothing half-written either.
Manifest prepare_dataset(const PrepareConfig& p, const std::string& data_path, int64_t vocab_size,
                         uint64_t seed, int threads) {
  Timer timer;
  const std::vector<Document> docs = read_corpus(p.input, p.format);  // input errors first
  const std::vector<Document> tag_docs = read_tags(p, docs);
  std::error_code ec;
  std::string final_dir = fs::path(data_path).lexically_normal().string();
  while (final_dir.size() > 1 && final_dir.back() == '/') final_dir.pop_back();
  if (fs::exists(final_dir + "/manifest.json"))
    throw Error(ExitCode::bad_input,
                "data.path '" + final_dir + "' already holds a prepared dataset (manifest.json), which "
                "runs may be reading: choose another data.path, or remove that folder first");
  if (fs::exists(final_dir) && (!fs::is_directory(final_dir) || !fs::is_empty(final_dir, ec)))
    throw Error(ExitCode::bad_input,
                "data.path '" + final_dir + "' exists and is not an empty folder: choose another data.path");
  int64_t words = 0;
  for (const Document& d : docs) words += d.words;
  log_info("prepare: {} documents, {} words from '{}'", docs.size(), words, p.input);
  const std::vector<int> split = assign_splits(static_cast<int64_t>(docs.size()), p, seed);

  const std::string out_dir = final_dir + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(out_dir, ec);
  fs::create_directories(out_dir, ec);
  if (ec) throw Error(ExitCode::bad_input, "data.path: cannot create '" + out_dir + "': " + ec.message());
  struct Cleanup {  // the temporary folder goes, whatever happens before the rename
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      if (!dir.empty()) fs::remove_all(dir, e);
    }
  } cleanup{out_dir};

  const std::string model = make_tokenizer(p, docs, split, out_dir, vocab_size, threads);
  const Tokenizer tok(model);
  if (tok.vocab_size() != vocab_size)
    throw Error(ExitCode::bad_input,
                fmt::format("tokenizer '{}' has {} pieces but model.vocab_size is {}; set "
                            "model.vocab_size: {} or use another tokenizer",
                            model, tok.vocab_size(), vocab_size, tok.vocab_size()));

  Manifest m;
  m.vocab_size = vocab_size;
  m.tokenizer_file = "tokenizer.model";
  m.tokenizer_sha256 = sha256_file(model);
  m.tokenizer_kind = p.tokenizer_model.empty()
                         ? (p.tokenizer == TokenizerKind::unigram ? "unigram" : "bpe")
                         : "given";
  m.eos_id = tok.eos_id();
  m.mask_id = tok.mask_id();
  m.split_seed = seed;
  m.input = p.input;
  std::map<std::string, int16_t> tag_ids;
  int64_t untagged_docs = 0;
  for (int s = 0; s < 3; ++s) {
    SplitInfo& info = m.splits[kSplits[s]];
    std::vector<int32_t> tokens;
    std::vector<int16_t> tags;  // [split tokens] with prepare.tags
    std::vector<uint64_t> offsets = {0};
    auto flush = [&] {
      if (tokens.empty()) return;
      const std::string file = fmt::format("{}-{:05d}.bin", kSplits[s], info.shards.size());
      write_shard(out_dir + "/" + file, tokens, offsets, vocab_size);
      info.shards.push_back({file, sha256_file(out_dir + "/" + file),
                             static_cast<int64_t>(tokens.size()),
                             static_cast<int64_t>(offsets.size() - 1)});
      tokens.clear();
      offsets = {0};
    };
    for (size_t d = 0; d < docs.size(); ++d) {
      if (split[d] != s) continue;
      const size_t first = tokens.size();
      tok.encode(docs[d].text, tokens);
      tokens.push_back(tok.eos_id());
      if (!tag_docs.empty()) {
        const size_t n = tokens.size() - first;
        tags.resize(tags.size() + n);
        int16_t* out = tags.data() + tags.size() - n;
        if (!tag_tokens(tok, tokens.data() + first, n - 1, tag_docs[d].text, tag_ids, m.tag_names, out))
          ++untagged_docs;
        out[n - 1] = -1;  // </s>
      }
      offsets.push_back(tokens.size());
      info.tokens += static_cast<int64_t>(offsets.back() - offsets[offsets.size() - 2]);
      info.documents += 1;
      info.words += docs[d].words;
      if (static_cast<int64_t>(tokens.size()) >= p.max_shard_tokens) flush();
    }
    flush();
    if (!tag_docs.empty() && !tags.empty()) {
      const std::string file = fmt::format("{}-tags.bin", kSplits[s]);
      write_tags(out_dir + "/" + file, tags);
      m.tag_files[kSplits[s]] = {file, sha256_file(out_dir + "/" + file), static_cast<int64_t>(tags.size())};
    }
    log_info("prepare: {:>5}: {} documents, {} words, {} tokens in {} shard(s)", kSplits[s],
             info.documents, info.words, info.tokens, info.shards.size());
  }
  if (!tag_docs.empty())
    log_info("prepare: {} tags from '{}'{}", m.tag_names.size(), p.tags,
             untagged_docs == 0 ? std::string()
                                : fmt::format("; {} documents left untagged: their pieces do not split "
                                              "into the tagged words",
                                              untagged_docs));
  {
    std::ofstream out(out_dir + "/manifest.json");
    out << m.to_json();
    if (!out.flush()) throw Error(ExitCode::bad_input, "cannot write '" + out_dir + "/manifest.json' (disk full?)");
  }
  if (fs::exists(final_dir)) fs::remove(final_dir, ec);  // an empty folder (checked above)
  fs::rename(out_dir, final_dir, ec);
  if (ec) throw Error(ExitCode::bad_input, "cannot move the dataset to '" + final_dir + "': " + ec.message());
  cleanup.dir.clear();
  log_info("prepare: wrote '{}' in {:.1f}s", final_dir, timer.seconds());
  return m;
}

}  // namespace sy
