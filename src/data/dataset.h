#pragma once
// The token sources a run reads, whatever data.source is.
#include <memory>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "data/loader.h"

namespace sy {

// A tag per token of a split (prepare.tags): of_token[i] indexes names, −1 where
// a token has no tag (end of document, a word the tokenizer split differently).
struct TokenTags {
  std::vector<std::string> names;
  std::vector<int32_t> of_token;
};

struct Dataset {
  std::string name;  // for messages: "data/prepared/brown"
  std::unique_ptr<TokenSource> train;
  std::unique_ptr<TokenSource> eval;  // the evaluation split
  std::string eval_split;
  int32_t mask_id = -1;
  double eval_words_per_token = 0;  // 0: the source has no word count
  double entropy_bits = -1;         // per token, when the source knows it (synthetic)
  TokenTags eval_tags;              // empty unless the prepared data has tags
};

// eval_split: "val" or "test" (prepared data); synthetic and bytes sources hold
// out their tail instead. Throws Error(bad_input) naming what is wrong.
Dataset open_dataset(const DataConfig& d, int64_t vocab, uint64_t seed,
                     const std::string& eval_split = "val");

}  // namespace sy
