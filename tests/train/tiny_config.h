#pragma once
// The smallest trainable config for in-process trainer tests: 2 layers of width
// 32, 2 × 16 tokens per step, synthetic data.
#include "config/config.h"

namespace sy::test {

inline Config tiny_config(Arch arch = Arch::decoder) {
  Config cfg;
  cfg.model.arch = arch;
  cfg.model.vocab_size = 64;
  cfg.model.d_model = 32;
  cfg.model.n_layers = 2;
  cfg.model.n_heads = 2;
  cfg.model.d_ff = 48;
  cfg.model.max_seq = 16;
  cfg.train.batch_size = 2;
  cfg.train.seq_len = 16;
  cfg.data.synthetic_tokens = 4096;
  return cfg;
}

}  // namespace sy::test
