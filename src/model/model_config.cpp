#include "model/model_config.h"

namespace sy {

void ModelConfig::validate(Problems& p) const {
  p.require(vocab_size >= 2, "model.vocab_size", vocab_size, "must be at least 2");
  p.require(d_model >= 1, "model.d_model", d_model, "must be positive");
  p.require(n_layers >= 1, "model.n_layers", n_layers, "must be positive");
  p.require(d_ff >= 1, "model.d_ff", d_ff, "must be positive");
  p.require(max_seq >= 1, "model.max_seq", max_seq, "must be positive");
  p.require(norm_eps > 0, "model.norm_eps", norm_eps, "must be positive");
  p.require(init_std > 0, "model.init_std", init_std, "must be positive");
  if (p.require(n_heads >= 1, "model.n_heads", n_heads, "must be positive") && d_model >= 1)
    p.require(d_model % n_heads == 0, "model.n_heads", n_heads,
              "must divide model.d_model (" + std::to_string(d_model) + ")");
  p.require(vocab_size <= (int64_t{1} << 31) - 1, "model.vocab_size", vocab_size,
            "must fit in a 32-bit token id");
}

int64_t ModelConfig::active_matmul_params() const {
  const int64_t C = d_model, H = d_ff;
  const int64_t per_block = 4 * C * C + 3 * C * H;  // qkv + out; w_in, w_gate, w_out
  return n_layers * per_block + vocab_size * C;     // + output projection
}

double ModelConfig::train_flops_per_token(int64_t seq) const {
  return 6.0 * static_cast<double>(active_matmul_params()) +
         12.0 * static_cast<double>(n_layers) * static_cast<double>(seq) *
             static_cast<double>(d_model);
}

}  // namespace sy
