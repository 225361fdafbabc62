#include "model/block.h"

namespace sy {

Block::Block(LayerEnv env, const std::string& prefix, const ModelConfig& cfg,
             std::unique_ptr<FeedForward> ffn)
    : env_(env),
      norm1_(env, prefix + ".norm1", cfg.norm, cfg.d_model, cfg.norm_eps),
      norm2_(env, prefix + ".norm2", cfg.norm, cfg.d_model, cfg.norm_eps),
      attn_(env, prefix + ".attn", cfg),
      ffn_(std::move(ffn)) {}

void Block::allocate(Arena& arena, int64_t batch, int64_t seq, const BackwardScratch& scratch) {
  const int64_t N = batch * seq;
  const int64_t C = scratch.dln.dim(-1);
  norm1_.allocate(arena, N);
  norm2_.allocate(arena, N);
  attn_.allocate(arena, batch, seq, scratch);
  ffn_->allocate(arena, N);
  mid_ = arena.make(env_.dtype, {batch, seq, C});
  out = arena.make(env_.dtype, {batch, seq, C});
}

void Block::forward(const Tensor& x) {
  const Tensor x2 = x.view({x.numel() / mid_.dim(-1), mid_.dim(-1)});
  norm1_.forward(x2);
  env_.ops.copy(mid_, x);
  attn_.forward(norm1_.out, mid_.view({x2.dim(0), x2.dim(1)}));
  norm2_.forward(mid_.view({x2.dim(0), x2.dim(1)}));
  env_.ops.copy(out, mid_);
  ffn_->forward(norm2_.out, out.view({x2.dim(0), x2.dim(1)}));
}

void Block::backward(Tensor dres, BackwardScratch& s) {
  const int64_t C = mid_.dim(-1), N = mid_.numel() / C;
  Tensor d = dres.view({N, C});
  Tensor dln = s.dln.view({N, C});
  ffn_->backward(d, dln, s);
  norm2_.backward(dln, d);  // d: ∂L/∂out → ∂L/∂mid
  attn_.backward(d, dln, s);
  norm1_.backward(dln, d);  // d: ∂L/∂mid → ∂L/∂x
}

}  // namespace sy
