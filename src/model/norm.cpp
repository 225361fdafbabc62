#include "model/norm.h"

namespace sy {

Norm::Norm(LayerEnv env, const std::string& prefix, NormKind kind, int64_t channels, double eps)
    : env_(env), kind_(kind), channels_(channels), eps_(eps) {
  w_ = env.params.add(prefix + ".weight", {channels}, Init::ones, 0.0, /*decay=*/false);
  if (kind == NormKind::layernorm)
    b_ = env.params.add(prefix + ".bias", {channels}, Init::zeros, 0.0, /*decay=*/false);
}

void Norm::allocate(Arena& arena, int64_t n_tokens) {
  out = arena.make(env_.dtype, {n_tokens, channels_});
  mean_ = arena.make(env_.dtype, {n_tokens});
  rstd_ = arena.make(env_.dtype, {n_tokens});
}

void Norm::forward(const Tensor& x) {
  x_ = x;
  const Tensor b = b_ >= 0 ? env_.params.value(b_) : Tensor{};
  env_.ops.norm_forward(kind_, out, mean_, rstd_, x, env_.params.value(w_), b, eps_);
}

void Norm::backward(const Tensor& dout, Tensor dx) {
  const Tensor db = b_ >= 0 ? env_.params.grad(b_) : Tensor{};
  env_.ops.norm_backward(kind_, dx, env_.params.grad(w_), db, dout, x_, env_.params.value(w_),
                         mean_, rstd_);
}

}  // namespace sy
