#pragma once
// A tiny model and data for model tests.
#include <vector>

#include "core/rng.h"
#include "model/model_config.h"

namespace sy::test {

inline ModelConfig model_of(Arch arch, int64_t vocab, int64_t width, int64_t layers, int64_t heads,
                            int64_t ff, int64_t max_seq) {
  ModelConfig m;
  m.arch = arch;
  m.vocab_size = vocab;
  m.d_model = width;
  m.n_layers = layers;
  m.n_heads = heads;
  m.d_ff = ff;
  m.max_seq = max_seq;
  return m;
}

inline ModelConfig tiny_model(Arch arch) {
  ModelConfig m = model_of(arch, 11, 8, 2, 2, 12, 5);
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
