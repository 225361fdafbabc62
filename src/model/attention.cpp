#include "model/attention.h"

#include <cmath>

#include "core/errors.h"
#include "core/phases.h"

namespace sy {

Attention::Attention(LayerEnv env, const std::string& prefix, const ModelConfig& cfg)
    : env_(env), C_(cfg.d_model), n_heads_(cfg.n_heads), causal_(cfg.arch == Arch::decoder) {
  w_qkv_ = env.params.add(prefix + ".w_qkv", {3 * C_, C_}, Init::normal, cfg.init_std);
  // Residual-branch outputs scaled by 1/√(2·layers) at init (GPT-2), so the
  // residual stream's variance does not grow with depth.
  w_o_ = env.params.add(prefix + ".w_o", {C_, C_}, Init::normal,
                        cfg.init_std / std::sqrt(2.0 * cfg.n_layers));
}

void Attention::allocate(Arena& arena, int64_t batch, int64_t seq, const BackwardScratch& s) {
  const int64_t D = C_ / n_heads_;
  qkv_ = arena.make(env_.dtype, {batch, seq, 3 * C_});
  att_ = arena.make(env_.dtype, {batch, seq, C_});
  if (fused_) {
    lse_ = arena.make(env_.dtype, {batch, n_heads_, seq});
    return;
  }
  cache_.q = arena.make(env_.dtype, {batch, n_heads_, seq, D});
  cache_.k = arena.make(env_.dtype, {batch, n_heads_, seq, D});
  cache_.v = arena.make(env_.dtype, {batch, n_heads_, seq, D});
  cache_.out_heads = arena.make(env_.dtype, {batch, n_heads_, seq, D});
  cache_.probs = arena.make(env_.dtype, {batch, n_heads_, seq, seq});
  cache_.dq = s.dq;
  cache_.dk = s.dk;
  cache_.dv = s.dv;
  cache_.dprobs = s.dprobs;
}

void Attention::allocate_cache(Arena& arena, int64_t batch, int64_t max_len) {
  SY_CHECK(causal_, "decoding with a cache needs causal attention (a decoder)");
  k_cache_ = arena.make(env_.dtype, {batch, max_len, C_});
  v_cache_ = arena.make(env_.dtype, {batch, max_len, C_});
  scores_ = arena.make(env_.dtype, {batch, n_heads_, max_len});
}

void Attention::forward(const Tensor& x, Tensor out) {
  PhaseScope phase(Phase::attention);
  x_ = x;
  const int64_t N = x.numel() / C_;
  Ops& ops = env_.ops;
  ops.gemm(false, true, N, 3 * C_, C_, 1.0, x, env_.params.value(w_qkv_), 0.0, qkv_);
  if (position_ >= 0)  // one position per sequence, against the cache
    ops.attention_decode(att_.view({N, C_}), qkv_.view({N, 3 * C_}), k_cache_, v_cache_, scores_, position_,
                         n_heads_);
  else if (fused_)
    ops.attention_fused_forward(att_, lse_, qkv_, n_heads_, causal_);
  else
    ops.attention_forward(att_, cache_, qkv_, n_heads_, causal_);
  ops.gemm(false, true, N, C_, C_, 1.0, att_, env_.params.value(w_o_), 1.0, out);
}

void Attention::backward(const Tensor& dout, Tensor dx, BackwardScratch& s) {
  PhaseScope phase(Phase::attention);
  const int64_t N = x_.numel() / C_;
  Ops& ops = env_.ops;
  ParamStore& P = env_.params;
  // out = att · w_oᵀ:  dw_o += doutᵀ · att;  datt = dout · w_o
  ops.gemm(true, false, C_, C_, N, 1.0, dout, att_, 1.0, P.grad(w_o_));
  Tensor datt = s.datt.view({N, C_});
  ops.gemm(false, false, N, C_, C_, 1.0, dout, P.value(w_o_), 0.0, datt);
  Tensor dqkv = s.dqkv.view({qkv_.dim(0), qkv_.dim(1), 3 * C_});
  if (fused_)
    ops.attention_fused_backward(dqkv, s.delta, datt, qkv_, att_, lse_, n_heads_, causal_);
  else
    ops.attention_backward(dqkv, cache_, datt, n_heads_, causal_);
  // qkv = x · w_qkvᵀ:  dw_qkv += dqkvᵀ · x;  dx = dqkv · w_qkv
  ops.gemm(true, false, 3 * C_, C_, N, 1.0, dqkv, x_, 1.0, P.grad(w_qkv_));
  ops.gemm(false, false, N, C_, 3 * C_, 1.0, dqkv, P.value(w_qkv_), 0.0, dx);
}

}  // namespace sy
