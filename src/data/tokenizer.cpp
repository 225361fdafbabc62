#include "data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "core/errors.h"

namespace sy {

void Tokenizer::train(const std::string& text_file, const std::string& prefix,
                      const TokenizerTraining& t) {
  const std::string args = fmt::format(
      "--input={} --model_prefix={} --vocab_size={} --model_type={} --character_coverage={} "
      "--num_threads={} --unk_id=0 --eos_id=1 --bos_id=-1 --pad_id=-1 --control_symbols=<mask> "
      "--minloglevel=2 --max_sentence_length=65536",
      text_file, prefix, t.vocab_size, t.kind == TokenizerKind::unigram ? "unigram" : "bpe",
      t.character_coverage, std::max(1, t.threads));
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (!status.ok())
    throw Error(ExitCode::bad_input,
                "tokenizer training failed: " + status.ToString() +
                    (status.ToString().find("Vocabulary size") != std::string::npos
                         ? " — lower model.vocab_size, or give prepare more text"
                         : ""));
}

Tokenizer::Tokenizer(const std::string& model_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(model_path) {
  const auto status = sp_->Load(model_path);
  if (!status.ok())
    throw Error(ExitCode::bad_input,
                "cannot load tokenizer '" + model_path + "': " + status.ToString());
}

Tokenizer::~Tokenizer() = default;

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int32_t Tokenizer::eos_id() const { return sp_->eos_id(); }

int32_t Tokenizer::mask_id() const {
  const int id = sp_->PieceToId("<mask>");
  return id == sp_->unk_id() ? -1 : id;
}

void Tokenizer::encode(const std::string& text, std::vector<int32_t>& out) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw Error(ExitCode::bad_input, "tokenizer: " + status.ToString());
  out.insert(out.end(), ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  return text;
}

}  // namespace sy
