#include "data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>

#include "core/errors.h"

namespace sy {

namespace {

// The training text, line by line, read by us: SentencePiece never sees a file
// name, so paths with spaces, commas or any other characters cannot be misparsed
// as its options.
class LineIterator final : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::string& path) : in_(path), path_(path) {
    if (!in_) status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kNotFound,
                                                    "cannot read " + path);
    Next();
  }
  bool done() const override { return done_; }
  void Next() override { done_ = !std::getline(in_, line_); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return status_; }

 private:
  std::ifstream in_;
  std::string path_, line_;
  bool done_ = false;
  sentencepiece::util::Status status_;
};

}  // namespace

void Tokenizer::train(const std::string& text_file, const std::string& prefix,
                      const TokenizerTraining& t) {
  // No paths in the option string: the text comes from an iterator, the model
  // back as bytes, written to <prefix>.model here.
  const std::string args = fmt::format(
      "--vocab_size={} --model_type={} --character_coverage={} --num_threads={} --unk_id=0 "
      "--eos_id=1 --bos_id=-1 --pad_id=-1 --control_symbols=<mask> --minloglevel=2 "
      "--max_sentence_length=65536",
      t.vocab_size, t.kind == TokenizerKind::unigram ? "unigram" : "bpe", t.character_coverage,
      std::max(1, t.threads));
  LineIterator lines(text_file);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines, &model);
  if (status.ok()) {
    const std::string path = prefix + ".model";
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(model.data(), static_cast<std::streamsize>(model.size()));
    if (!out.flush())
      throw Error(ExitCode::bad_input, "cannot write the tokenizer model '" + path + "'");
    return;
  }
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
int32_t Tokenizer::unk_id() const { return sp_->unk_id(); }
std::string Tokenizer::piece(int32_t id) const { return sp_->IdToPiece(id); }

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
