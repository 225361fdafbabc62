#pragma once
// How a run's token ids and text map to each other: the SentencePiece model of its
// prepared data, or raw bytes (data.source: bytes). Synthetic data has no text.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/data_config.h"

namespace sy {

class TextCodec {
 public:
  virtual ~TextCodec() = default;
  // The codec of a run's data. Throws Error(bad_input) for synthetic data (no text),
  // or when the tokenizer is missing or does not fit `vocab` (another model?).
  static std::unique_ptr<TextCodec> for_data(const DataConfig& d, int64_t vocab);

  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual std::string piece(int32_t id) const = 0;  // one id's text, as the trace shows it
  virtual int32_t eod_id() const = 0;      // end of document; -1: none
  virtual int32_t mask_id() const = 0;     // -1: none
  virtual int32_t unknown_id() const = 0;  // -1: every input has ids
  virtual std::string describe() const = 0;
};

}  // namespace sy
