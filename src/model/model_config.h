#pragma once
// The model section of a config, validated where it is defined.
#include <cstdint>
#include <string>

#include "backend/ops.h"
#include "core/problems.h"

namespace sy {

enum class Arch { decoder, encoder };
enum class PosKind { learned, sinusoidal };

struct ModelConfig {
  Arch arch = Arch::decoder;
  int64_t vocab_size = 8192;
  int64_t d_model = 256;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t d_ff = 1024;  // GLU hidden size H
  int64_t max_seq = 256;
  Activation activation = Activation::gelu;
  NormKind norm = NormKind::layernorm;
  double norm_eps = 1e-5;
  PosKind positions = PosKind::learned;
  bool tie_embeddings = true;
  double init_std = 0.02;

  void validate(Problems& p) const;
  // Matrix weights a token is multiplied by (output projection included, embedding
  // lookup excluded): the N_active of docs/design.md's FLOP accounting for a dense model.
  int64_t active_matmul_params() const;
  // Model FLOPs per token for a training step (forward + backward), at sequence `seq`.
  double train_flops_per_token(int64_t seq) const;
};

}  // namespace sy
