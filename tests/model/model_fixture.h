#pragma once
// A tiny model and data for model tests.
#include <vector>

#include "core/rng.h"
#include "model/model_config.h"

namespace sy::test {

inline ModelConfig tiny_model(Arch arch) {
  ModelConfig m;
  m.arch = arch;
  m.vocab_size = 11;
  m.d_model = 8;
  m.n_layers = 2;
  m.n_heads = 2;
  m.d_ff = 12;
  m.max_seq = 5;
  m.init_std = 0.3;  // large enough that every path carries a real gradient
  return m;
}

inline std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  const RngStream r{seed, 99};
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>(r.below(i, vocab));
  return v;
}

}  // namespace sy::test
