#pragma once
// In-memory token streams for the built-in data sources, split into a training
// part and a held-out evaluation tail.
#include <cstdint>
#include <vector>

#include "data/data_config.h"

namespace sy {

struct TokenStreams {
  std::vector<int32_t> train;
  std::vector<int32_t> eval;
  double entropy_bits = -1;  // per-token entropy of the source when known (synthetic)
};

// A seeded order-1 Markov chain: each token has `branching` successors with random
// probabilities. Its entropy rate is the loss floor a model can reach.
TokenStreams make_synthetic_streams(const DataConfig& d, int64_t vocab, uint64_t seed);
// A text file as bytes (vocabulary 256). Throws Error(bad_input) naming the file.
TokenStreams read_byte_streams(const DataConfig& d);
TokenStreams load_streams(const DataConfig& d, int64_t vocab, uint64_t seed);

}  // namespace sy
