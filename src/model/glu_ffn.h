#pragma once
// Gated linear unit FFN: W_out · (act(W_in·x) ⊙ (W_gate·x)) — GEGLU / SwiGLU / ReGLU.
#include <string>

#include "model/layer.h"

namespace sy {

class GluFfn final : public FeedForward {
 public:
  // w_in and w_gate are registered back to back, so one GEMM computes [a | g].
  GluFfn(LayerEnv env, const std::string& prefix, int64_t d_model, int64_t d_ff, Activation act,
         double init_std, double out_std);
  void allocate(Arena& arena, int64_t n_tokens) override;
  void forward(const Tensor& x, Tensor out) override;
  void backward(const Tensor& dout, Tensor dx, BackwardScratch& s) override;

 private:
  LayerEnv env_;
  int64_t C_, H_;
  Activation act_;
  ParamId w_in_, w_gate_;  // [H, C] each, adjacent: together [2H, C]
  ParamId w_out_;          // [C, H]
  Tensor x_;
  Tensor ag_;   // [N, 2H]  [W_in·x | W_gate·x]
  Tensor hid_;  // [N, H]   act(a) ⊙ g
};

}  // namespace sy
