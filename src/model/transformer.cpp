#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/errors.h"
#include "model/glu_ffn.h"

namespace sy {

Transformer::Transformer(Ops& ops, const ModelConfig& cfg, double label_smoothing, DType dtype,
                         const FfnFactory& ffn_factory)
    : ops_(ops),
      cfg_(cfg),
      dtype_(dtype),
      params_(ops, dtype),
      env_{ops, params_, dtype},
      embed_(env_, cfg),
      norm_f_(env_, "norm_f", cfg.norm, cfg.d_model, cfg.norm_eps),
      loss_(env_, label_smoothing),
      arena_(ops) {
  norm_f_first_ = params_.find("norm_f.weight");
  blocks_first_ = params_.size();
  const double out_std = cfg.init_std / std::sqrt(2.0 * cfg.n_layers);
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    const std::string prefix = "blocks." + std::to_string(l);
    std::unique_ptr<FeedForward> ffn =
        ffn_factory ? ffn_factory(env_, prefix, static_cast<int>(l)) : nullptr;
    if (!ffn)
      ffn = std::make_unique<GluFfn>(env_, prefix + ".ffn", cfg.d_model, cfg.d_ff, cfg.activation,
                                     cfg.init_std, out_std);
    blocks_.push_back(std::make_unique<Block>(env_, prefix, cfg, std::move(ffn)));
    block_end_.push_back(params_.size());
  }
  if (!cfg.tie_embeddings)
    head_ = params_.add("head.weight", {cfg.vocab_size, cfg.d_model}, Init::normal, cfg.init_std);
  params_.allocate();
}

void Transformer::allocate(int64_t batch, int64_t seq) {
  SY_CHECK(batch_ == 0, "allocate() called twice");
  SY_CHECK(seq <= cfg_.max_seq, "seq {} exceeds model.max_seq {}", seq, cfg_.max_seq);
  batch_ = batch;
  seq_ = seq;
  const int64_t N = batch * seq, C = cfg_.d_model, H = cfg_.d_ff, NH = cfg_.n_heads;
  scratch_.dln = arena_.make(dtype_, {N, C});
  scratch_.datt = arena_.make(dtype_, {N, C});
  scratch_.dqkv = arena_.make(dtype_, {N, 3 * C});
  scratch_.dhid = arena_.make(dtype_, {N, H});
  scratch_.dag = arena_.make(dtype_, {N, 2 * H});
  if (fused_attention_) {
    scratch_.delta = arena_.make(dtype_, {batch, NH, seq});
  } else {
    for (Tensor* t : {&scratch_.dq, &scratch_.dk, &scratch_.dv})
      *t = arena_.make(dtype_, {batch, NH, seq, C / NH});
    scratch_.dprobs = arena_.make(dtype_, {batch, NH, seq, seq});
  }
  ids_ = arena_.make(DType::i32, {batch, seq});
  targets_ = arena_.make(DType::i32, {N});
  embed_.allocate(arena_, batch, seq);
  for (auto& b : blocks_) b->allocate(arena_, batch, seq, scratch_);
  norm_f_.allocate(arena_, N);
  if (logits_chunk_ >= N) logits_chunk_ = 0;
  logits_ = arena_.make(dtype_, {logits_chunk_ > 0 ? logits_chunk_ : N, cfg_.vocab_size});
  loss_.allocate(arena_, N);
  dres_ = arena_.make(dtype_, {batch, seq, C});
}

void Transformer::allocate_decoding(int64_t batch, int64_t max_len) {
  SY_CHECK(cfg_.arch == Arch::decoder, "decoding needs a decoder (model.arch: decoder)");
  SY_CHECK(max_len >= 1 && max_len <= cfg_.max_seq, "decoding length {} outside 1..model.max_seq {}", max_len,
           cfg_.max_seq);
  allocate(batch, 1);
  for (auto& b : blocks_) b->allocate_cache(arena_, batch, max_len);
  decode_len_ = max_len;
}

Tensor Transformer::decode(const int32_t* ids, int64_t position) {
  SY_CHECK(decode_len_ > 0, "decode() before allocate_decoding()");
  SY_CHECK(position >= 0 && position <= next_position_, "decode: position {} after {} (positions come in order)",
           position, next_position_ - 1);
  SY_CHECK(position < decode_len_, "decode: position {} beyond the {} allocated", position, decode_len_);
  const int64_t B = batch_, C = cfg_.d_model;
  ops_.from_host(ids_, ids);
  embed_.forward(ids_, position);
  const Tensor* x = &embed_.out;
  for (auto& b : blocks_) {
    b->set_position(position);
    b->forward(*x);
    x = &b->out;
  }
  norm_f_.forward(x->view({B, C}));
  const ParamId head = head_ >= 0 ? head_ : embed_.token_table();
  ops_.gemm(false, true, B, cfg_.vocab_size, C, 1.0, norm_f_.out, params_.value(head), 0.0, logits_);
  next_position_ = position + 1;
  return logits_;
}

LossSums Transformer::forward(const int32_t* ids, const int32_t* targets) {
  return forward_impl(ids, targets, nullptr);
}

LossSums Transformer::forward(const int32_t* ids, const int32_t* targets, double grad_scale) {
  return forward_impl(ids, targets, &grad_scale);
}

LossSums Transformer::forward_impl(const int32_t* ids, const int32_t* targets, const double* grad_scale) {
  SY_CHECK(batch_ > 0, "forward() before allocate()");
  SY_CHECK(decode_len_ == 0, "forward() on a model allocated for decoding");
  const int64_t N = batch_ * seq_, C = cfg_.d_model;
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) count += targets[i] >= 0;
  ops_.from_host(ids_, ids);
  ops_.from_host(targets_, targets);
  embed_.forward(ids_);
  const Tensor* x = &embed_.out;
  for (auto& b : blocks_) {
    b->forward(*x);
    x = &b->out;
  }
  norm_f_.forward(x->view({N, C}));
  const ParamId head = head_ >= 0 ? head_ : embed_.token_table();
  head_grads_done_ = grad_scale != nullptr && logits_chunk_ > 0;
  if (head_grads_done_) head_grad_scale_ = *grad_scale;
  if (logits_chunk_ == 0) {
    ops_.gemm(false, true, N, cfg_.vocab_size, C, 1.0, norm_f_.out, params_.value(head), 0.0, logits_);
    return loss_.forward(logits_, targets_, count);
  }
  // Chunked: each chunk's loss rows, summed on the host in chunk order.
  LossSums sums;
  for (int64_t r = 0; r < N; r += logits_chunk_) {
    const int64_t n = std::min(logits_chunk_, N - r);
    int64_t chunk_count = 0;
    for (int64_t i = r; i < r + n; ++i) chunk_count += targets[i] >= 0;
    const Tensor logits = logits_.view({n, cfg_.vocab_size});
    ops_.gemm(false, true, n, cfg_.vocab_size, C, 1.0, norm_f_.out.view({n, C}, r * C), params_.value(head), 0.0,
              logits);
    const LossSums s = loss_.forward_rows(logits, targets_, r, chunk_count);
    if (head_grads_done_) classifier_backward_rows(logits, r, n, head_grad_scale_);
    sums.loss += s.loss;
    sums.nll += s.nll;
    sums.count += s.count;
  }
  return sums;
}

void Transformer::set_logits_chunk(int64_t rows) {
  SY_CHECK(batch_ == 0, "set_logits_chunk() after allocate()");
  SY_CHECK(rows >= 0, "logits chunk {} rows", rows);
  logits_chunk_ = rows;
}

void Transformer::set_fused_attention(bool on) {
  SY_CHECK(batch_ == 0, "set_fused_attention() after allocate()");
  fused_attention_ = on;
  for (auto& b : blocks_) b->set_fused_attention(on);
}

Tensor Transformer::logits() const {
  SY_CHECK(logits_chunk_ == 0, "the logits of every row do not exist with a logits chunk");
  return logits_;
}

// logits = h · headᵀ:  dhead += dlogitsᵀ · h;  dh = dlogits · head
void Transformer::classifier_backward_rows(Tensor logits, int64_t r, int64_t n, double grad_scale) {
  const int64_t C = cfg_.d_model, V = cfg_.vocab_size;
  const ParamId head = head_ >= 0 ? head_ : embed_.token_table();
  loss_.backward_rows(logits, r, grad_scale);  // logits now hold dlogits
  const Tensor h = norm_f_.out.view({n, C}, r * C);
  ops_.gemm(true, false, V, C, n, 1.0, logits, h, 1.0, params_.grad(head));
  ops_.gemm(false, false, n, C, V, 1.0, logits, params_.value(head), 0.0, scratch_.dln.view({n, C}, r * C));
}

void Transformer::backward(double grad_scale) {
  const int64_t N = batch_ * seq_, C = cfg_.d_model, V = cfg_.vocab_size;
  const ParamId head = head_ >= 0 ? head_ : embed_.token_table();
  Tensor dh = scratch_.dln.view({N, C});
  if (head_grads_done_) {  // forward(…, grad_scale) did it
    SY_CHECK(grad_scale == head_grad_scale_, "backward({}) after forward(…, {}): the classifier's gradient "
             "was scaled by the forward's", grad_scale, head_grad_scale_);
    head_grads_done_ = false;
  } else if (logits_chunk_ == 0) {
    classifier_backward_rows(logits_, 0, N, grad_scale);
  } else {
    for (int64_t r = 0; r < N; r += logits_chunk_) {  // a chunk of rows at a time, logits recomputed
      const int64_t n = std::min(logits_chunk_, N - r);
      Tensor logits = logits_.view({n, V});
      ops_.gemm(false, true, n, V, C, 1.0, norm_f_.out.view({n, C}, r * C), params_.value(head), 0.0, logits);
      classifier_backward_rows(logits, r, n, grad_scale);
    }
  }
  ready(block_end_.empty() ? blocks_first_ : block_end_.back(), params_.size());  // untied head
  ops_.fill(dres_, 0.0);
  norm_f_.backward(dh, dres_.view({N, C}));
  ready(norm_f_first_, blocks_first_);
  for (size_t l = blocks_.size(); l-- > 0;) {
    blocks_[l]->backward(dres_, scratch_);
    ready(l > 0 ? block_end_[l - 1] : blocks_first_, block_end_[l]);
  }
  embed_.backward(dres_);  // (a tied head's gradient is final only here)
  ready(0, norm_f_first_);
}

}  // namespace sy
