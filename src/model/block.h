#pragma once
// A pre-norm Transformer block: x += Attn(Norm(x)); x += FFN(Norm(x)).
#include <memory>
#include <string>

#include "model/attention.h"
#include "model/layer.h"
#include "model/norm.h"

namespace sy {

class Block {
 public:
  Block(LayerEnv env, const std::string& prefix, const ModelConfig& cfg,
        std::unique_ptr<FeedForward> ffn);
  void allocate(Arena& arena, int64_t batch, int64_t seq, const BackwardScratch& scratch);
  // Decoding (see Transformer::allocate_decoding).
  void allocate_cache(Arena& arena, int64_t batch, int64_t max_len) { attn_.allocate_cache(arena, batch, max_len); }
  void set_position(int64_t p) { attn_.set_position(p); }
  void set_fused_attention(bool on) { attn_.set_fused(on); }
  // x [B, T, C] → out; x must stay alive until backward.
  void forward(const Tensor& x);
  // dres holds ∂L/∂out on entry and ∂L/∂x on return (updated in place).
  void backward(Tensor dres, BackwardScratch& s);

  Tensor out;  // [B, T, C]

 private:
  LayerEnv env_;
  Norm norm1_, norm2_;
  Attention attn_;
  std::unique_ptr<FeedForward> ffn_;
  Tensor mid_;  // [B, T, C]  x + Attn(Norm(x))
};

}  // namespace sy
