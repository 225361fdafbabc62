#pragma once
// LayerNorm or RMSNorm over the channel dim, with a learned scale (and bias).
#include <string>

#include "model/layer.h"

namespace sy {

class Norm {
 public:
  Norm(LayerEnv env, const std::string& prefix, NormKind kind, int64_t channels, double eps);
  void allocate(Arena& arena, int64_t n_tokens);
  void forward(const Tensor& x);  // x [N, C] → out; x must stay alive until backward
  // dx += ∂L/∂x for dout = ∂L/∂out.
  void backward(const Tensor& dout, Tensor dx);

  Tensor out;  // [N, C]

 private:
  LayerEnv env_;
  NormKind kind_;
  int64_t channels_;
  double eps_;
  ParamId w_, b_ = -1;
  Tensor mean_, rstd_;  // [N]
  Tensor x_;
};

}  // namespace sy
