#pragma once
// The whole model: embedding → blocks → final norm → output projection → loss.
// Written for one device; parallelism is applied outside it (by the trainer).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/block.h"
#include "model/embedding.h"
#include "model/loss.h"
#include "model/model_config.h"
#include "model/norm.h"

namespace sy {

// Makes the FFN of block `layer` (a GluFfn when empty): the seam through which
// MoE layers enter a model that does not know about them.
using FfnFactory =
    std::function<std::unique_ptr<FeedForward>(LayerEnv env, const std::string& prefix, int layer)>;

class Transformer {
 public:
  // Registers every parameter; allocate() then sizes activations for one micro-batch.
  Transformer(Ops& ops, const ModelConfig& cfg, double label_smoothing, DType dtype = DType::f32,
              const FfnFactory& ffn_factory = {});
  void allocate(int64_t batch, int64_t seq);
  void init_params(uint64_t seed) { params_.initialize(seed); }

  // ids, targets: host i32 [B, T] (target < 0: no loss at that position).
  LossSums forward(const int32_t* ids, const int32_t* targets);
  // Training: the same, and with a logits chunk the classifier's gradients (of
  // grad_scale·Σ loss, into the head's gradient and the final norm's output) are
  // computed here, each chunk while its logits are at hand, so backward(grad_scale)
  // skips the classifier instead of recomputing every chunk's logits (one GEMM of
  // tokens × vocab × width fewer). The same bits as forward() then backward().
  LossSums forward(const int32_t* ids, const int32_t* targets, double grad_scale);
  // Accumulates gradients of grad_scale·Σ loss into params().grads().
  void backward(double grad_scale);
  // Called by backward() with each range [first, end) of parameters whose gradients
  // it has finished, as soon as it has (the head, the final norm, each block from
  // the last, the embedding): the trainer starts their reduction over ranks there.
  // Every parameter is reported exactly once per backward pass.
  using GradsReady = std::function<void(ParamId first, ParamId end)>;
  void on_grads_ready(GradsReady f) { grads_ready_ = std::move(f); }

  // Decoding (decoder models, inference), instead of allocate(): then decode(ids [B],
  // p) feeds each of `batch` sequences its token at position p and returns the
  // logits [B, V] that follow it. Keys and values of earlier positions are cached,
  // so a position costs one token's work; positions come in order 0, 1, 2, … <
  // max_len (≤ model.max_seq). A position already decoded may come again: it
  // replaces that token and forgets every later one (0 starts new sequences).
  void allocate_decoding(int64_t batch, int64_t max_len);
  Tensor decode(const int32_t* ids, int64_t position);
  int64_t decode_capacity() const { return decode_len_; }

  ParamStore& params() { return params_; }
  const ModelConfig& config() const { return cfg_; }
  Tensor logits() const;  // [B·T, V] after forward (not with a logits chunk)
  // Training and evaluation compute the classifier `rows` rows at a time (0: all
  // at once): the [B·T, V] logits never exist, only [rows, V], and the backward
  // pass recomputes each chunk's logits (one more GEMM of the classifier). Before
  // allocate().
  void set_logits_chunk(int64_t rows);
  // Fused attention in every block (config attention_kernel: fused): no [T, T]
  // probabilities in memory. Before allocate().
  void set_fused_attention(bool on);
  size_t activation_bytes() const { return arena_.bytes(); }

 private:
  Ops& ops_;
  ModelConfig cfg_;
  DType dtype_;
  ParamStore params_;
  LayerEnv env_;
  Embedding embed_;
  std::vector<std::unique_ptr<Block>> blocks_;
  Norm norm_f_;
  ParamId head_ = -1;  // [V, C] when not tied to the token embedding
  CrossEntropyLoss loss_;
  Arena arena_;
  BackwardScratch scratch_;
  bool fused_attention_ = false;
  bool head_grads_done_ = false;  // forward(…, grad_scale) did the classifier's backward
  double head_grad_scale_ = 0;    // with this scale
  Tensor ids_, targets_;  // i32 [B, T]
  Tensor logits_;         // [B·T, V] or [chunk, V]; holds ∂L/∂logits after backward starts
  int64_t logits_chunk_ = 0;  // rows of logits_ when chunked (0: all)
  Tensor dres_;           // [B, T, C] residual-stream gradient
  int64_t batch_ = 0, seq_ = 0;
  int64_t decode_len_ = 0, next_position_ = 0;  // decoding
  // Parameter ids of each part, in registration order: embedding [0, norm_f_first_),
  // final norm [norm_f_first_, blocks_first_), block l [block_end_[l-1], block_end_[l]),
  // head [block_end_.back(), size).
  ParamId norm_f_first_ = 0, blocks_first_ = 0;
  std::vector<ParamId> block_end_;
  GradsReady grads_ready_;
  void ready(ParamId first, ParamId end) {
    if (grads_ready_ && end > first) grads_ready_(first, end);
  }
  LossSums forward_impl(const int32_t* ids, const int32_t* targets, const double* grad_scale);
  // The classifier's backward for rows [r, r + n) of the N, from their logits
  // [n, V] (overwritten by their gradient): dhead += dlogitsᵀ·h, dh = dlogits·head.
  void classifier_backward_rows(Tensor logits, int64_t r, int64_t n, double grad_scale);
};

}  // namespace sy
