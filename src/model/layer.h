#pragma once
// What every layer of the model shares: the ops, the parameter registry, and the
// activation-gradient scratch that all layers reuse during the backward pass
// (layers run backward one at a time, so one set of buffers serves them all).
#include <cstdint>

#include "backend/ops.h"
#include "model/params.h"

namespace sy {

struct LayerEnv {
  Ops& ops;
  ParamStore& params;
  DType dtype;
};

// Activation gradients, overwritten by each layer's backward in turn.
struct BackwardScratch {
  Tensor dln;    // [N, C]   gradient at a norm's output
  Tensor datt;   // [N, C]   gradient at the attention output (before w_o)
  Tensor dqkv;   // [N, 3C]
  Tensor dhid;   // [N, H]   gradient at the FFN hidden activation
  Tensor dag;    // [N, 2H]  gradient at the FFN gate inputs [a | g]
  Tensor dq, dk, dv;  // [B, NH, T, D]  reference attention
  Tensor dprobs;      // [B, NH, T, T]  reference attention
  Tensor delta;       // [B, NH, T]     fused attention
};

// The FFN slot of a block: a GLU FFN, or (in MoE blocks) a layer of experts.
class FeedForward {
 public:
  virtual ~FeedForward() = default;
  virtual void allocate(Arena& arena, int64_t n_tokens) = 0;
  // out += FFN(x); x [N, C] must stay alive until backward.
  virtual void forward(const Tensor& x, Tensor out) = 0;
  // dx = ∂L/∂x (written) from dout = ∂L/∂out; parameter gradients accumulate.
  virtual void backward(const Tensor& dout, Tensor dx, BackwardScratch& s) = 0;
};

}  // namespace sy
