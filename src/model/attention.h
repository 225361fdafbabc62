#pragma once
// Multi-head self-attention: qkv projection, attention core (causal or not),
// output projection added into the residual stream.
#include <string>

#include "model/layer.h"
#include "model/model_config.h"

namespace sy {

class Attention {
 public:
  Attention(LayerEnv env, const std::string& prefix, const ModelConfig& cfg);
  void allocate(Arena& arena, int64_t batch, int64_t seq, const BackwardScratch& scratch);
  // out += Attn(x); x [N, C] must stay alive until backward.
  void forward(const Tensor& x, Tensor out);
  // dx = ∂L/∂x (written) for dout = ∂L/∂out.
  void backward(const Tensor& dout, Tensor dx, BackwardScratch& s);

 private:
  LayerEnv env_;
  int64_t C_, n_heads_;
  bool causal_;
  ParamId w_qkv_;  // [3C, C]
  ParamId w_o_;    // [C, C]
  Tensor x_;
  Tensor qkv_;     // [B, T, 3C]
  Tensor att_;     // [B, T, C] heads merged, before the output projection
  AttentionCache cache_;
};

}  // namespace sy
