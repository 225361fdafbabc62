#pragma once
// The data section of a config, validated where it is defined.
#include <cstdint>
#include <string>

#include "core/problems.h"

namespace sy {

enum class DataSource {
  synthetic,  // a seeded order-1 Markov chain over the vocabulary (no files needed)
  bytes,      // a UTF-8 text file read as bytes (vocabulary 256)
};

struct DataConfig {
  DataSource source = DataSource::synthetic;
  std::string path;                 // for bytes
  int64_t synthetic_tokens = 1 << 20;
  int64_t synthetic_branching = 4;  // successors per token in the Markov chain
  double eval_fraction = 0.1;       // tail of the stream held out for evaluation
  double mask_prob = 0.15;          // encoder (masked LM) only

  void validate(Problems& p) const;
};

}  // namespace sy
