#pragma once
// SentencePiece behind a small interface. Ids: 0 <unk>, 1 </s> (end of document),
// 2 <mask> (masked-LM corruption); no <s> or <pad>.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/data_config.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace sy {

struct TokenizerTraining {
  TokenizerKind kind = TokenizerKind::unigram;
  int64_t vocab_size = 8192;
  double character_coverage = 1.0;
  int threads = 2;
};

class Tokenizer {
 public:
  // Trains on `text_file` (one sentence per line) and writes `<prefix>.model`.
  // Throws Error(bad_input) with SentencePiece's reason (e.g. vocab too large).
  static void train(const std::string& text_file, const std::string& prefix,
                    const TokenizerTraining& t);
  explicit Tokenizer(const std::string& model_path);  // throws Error(bad_input)
  ~Tokenizer();

  int64_t vocab_size() const;
  int32_t eos_id() const;
  int32_t mask_id() const;  // -1 if the model has no <mask>
  int32_t unk_id() const;
  std::string piece(int32_t id) const;  // the piece's text ("▁the": ▁ marks a word start)
  void encode(const std::string& text, std::vector<int32_t>& out) const;  // appends
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
};

}  // namespace sy
