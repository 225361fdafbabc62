#include "data/text_codec.h"

#include <filesystem>

#include "core/errors.h"
#include "data/prepared.h"
#include "data/tokenizer.h"

namespace sy {
namespace {

class SentencePieceCodec final : public TextCodec {
 public:
  SentencePieceCodec(const std::string& path, const Manifest& m) : tok_(path), path_(path), m_(m) {}
  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int32_t> ids;
    tok_.encode(text, ids);
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override { return tok_.decode(ids); }
  std::string piece(int32_t id) const override { return tok_.piece(id); }
  int32_t eod_id() const override { return m_.eos_id; }
  int32_t mask_id() const override { return m_.mask_id; }
  int32_t unknown_id() const override { return tok_.unk_id(); }
  std::string describe() const override { return "SentencePiece " + path_; }

 private:
  Tokenizer tok_;
  std::string path_;
  Manifest m_;
};

// data.source: bytes — id = byte value; the last id of the vocabulary is the mask.
class ByteCodec final : public TextCodec {
 public:
  explicit ByteCodec(int64_t vocab) : vocab_(vocab) {}
  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string s;
    for (int32_t id : ids)
      if (id >= 0 && id < 256) s.push_back(static_cast<char>(id));
    return s;
  }
  std::string piece(int32_t id) const override {
    if (id < 0 || id >= 256) return id == mask_id() ? "<mask>" : "<" + std::to_string(id) + ">";
    return std::string(1, static_cast<char>(id));
  }
  int32_t eod_id() const override { return -1; }
  int32_t mask_id() const override { return static_cast<int32_t>(vocab_ - 1); }
  int32_t unknown_id() const override { return -1; }
  std::string describe() const override { return "bytes"; }

 private:
  int64_t vocab_;
};

}  // namespace

std::unique_ptr<TextCodec> TextCodec::for_data(const DataConfig& d, int64_t vocab) {
  switch (d.source) {
    case DataSource::bytes: return std::make_unique<ByteCodec>(vocab);
    case DataSource::prepared: {
      const Manifest m = Manifest::load(d.path);
      const std::string path = d.path + "/" + m.tokenizer_file;
      if (!std::filesystem::exists(path))
        throw Error(ExitCode::bad_input, "the run's tokenizer '" + path + "' is missing (data.path moved? "
                                         "--set data.path=... points at the prepared data)");
      if (m.vocab_size != vocab)
        throw Error(ExitCode::bad_input,
                    fmt::format("the tokenizer of '{}' has {} pieces, the model {}: another dataset?", d.path,
                                m.vocab_size, vocab));
      return std::make_unique<SentencePieceCodec>(path, m);
    }
    case DataSource::synthetic: break;
  }
  throw Error(ExitCode::bad_input, "this run trained on synthetic data: its tokens stand for no text, so there "
                                   "is nothing to read or write (use data.source: prepared or bytes)");
}

}  // namespace sy
