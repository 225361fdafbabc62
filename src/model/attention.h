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
  // Decoding: keys and values of up to max_len positions of `batch` sequences are
  // kept; forward() then takes x [B, C] at position set_position() (causal only).
  void allocate_cache(Arena& arena, int64_t batch, int64_t max_len);
  void set_position(int64_t p) { position_ = p; }
  // Fused attention (Ops::attention_fused_forward): no [T, T] probabilities kept,
  // only each row's log-sum-exp. Before allocate().
  void set_fused(bool on) { fused_ = on; }
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
  AttentionCache cache_;      // reference attention
  bool fused_ = false;
  Tensor lse_;                // [B, NH, T] fused attention
  Tensor k_cache_, v_cache_;  // [B, L, C] decoding
  Tensor scores_;             // [B, NH, L] decoding scratch
  int64_t position_ = -1;     // ≥ 0: decoding at this position
};

}  // namespace sy
