#pragma once
// `switchyard prepare`: corpus → SentencePiece tokenizer → token shards + manifest.
#include <cstdint>
#include <string>

#include "data/data_config.h"
#include "data/prepared.h"

namespace sy {

// Reads prepare.input, splits documents into train / val / test with `seed`,
// trains (or reuses) the tokenizer on the training documents only, encodes every
// document followed by </s>, and writes shards and manifest.json into `out_dir`.
// Throws Error(bad_input) for every input problem, naming the file.
Manifest prepare_dataset(const PrepareConfig& p, const std::string& out_dir, int64_t vocab_size,
                         uint64_t seed, int threads);

}  // namespace sy
