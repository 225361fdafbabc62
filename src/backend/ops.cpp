// The checked front of the op interface: every argument rule of ops.h, checked
// once here for every backend, then the backend's implementation. A failed check
// is a bug in the caller (exit 1, naming the op, the argument and both shapes),
// except token ids outside the vocabulary, which are bad input data (exit 2).
//
// Index values (ids, targets, rows, slots) are checked when the index tensor is in
// host memory, where reading it is free. Device-resident index lists are built by
// code that checks them where it builds them (routing, the data loader).
#include "backend/op_checks.h"
#include "backend/ops.h"

#include <algorithm>

namespace sy {

void Ops::check_floating(const Tensor& t, const char* what) const {
  SY_CHECK(t.dtype != DType::i32, "{} is i32, expected a floating dtype", what);
  SY_CHECK(computes_in(t.dtype), "{} is {}: the {} backend does not compute in {}", what,
           dtype_name(t.dtype), device_name(device()), dtype_name(t.dtype));
  check_device(t, device(), what);
}

// ---- memory ----------------------------------------------------------------------------

void Ops::copy(Tensor dst, const Tensor& src) {
  check_dtype(dst, src.dtype, "copy dst");
  check_numel(dst, src.numel(), "copy dst");
  check_device(dst, device(), "copy dst");
  check_device(src, device(), "copy src");
  if (src.numel() > 0 && dst.ptr != src.ptr) copy_impl(dst, src);
}

void Ops::to_host(void* dst, const Tensor& src) {
  check_device(src, device(), "to_host src");
  ++host_reads_;
  if (src.numel() > 0) to_host_impl(dst, src);
}

void Ops::from_host(Tensor dst, const void* src) {
  check_device(dst, device(), "from_host dst");
  if (dst.numel() > 0) from_host_impl(dst, src);
}

void Ops::fill(Tensor x, double value) {
  if (x.dtype != DType::i32) check_floating(x, "fill x");
  check_device(x, device(), "fill x");
  if (x.numel() > 0) fill_impl(x, value);
}

// ---- matrix products -------------------------------------------------------------------

void Ops::note_allocated(void* p, uint64_t bytes) {
  allocations_[p] = bytes;
  in_use_ += bytes;
  peak_ = std::max(peak_, in_use_);
}

void Ops::note_freed(void* p) {
  const auto it = allocations_.find(p);
  if (it == allocations_.end()) return;
  in_use_ -= it->second;
  allocations_.erase(it);
}

void Ops::set_bf16_operands(bool on) {
  if (on && !supports_bf16_operands())
    throw Error(ExitCode::bad_input, "precision: bf16 is not available on the " + std::string(device_name(device())) +
                                         " backend yet; use precision: fp32");
  bf16_operands_ = on;
}

void Ops::gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const Tensor& A,
               const Tensor& B, double beta, Tensor C) {
  SY_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm dims M={} N={} K={}", M, N, K);
  check_numel(A, M * K, "gemm A");
  check_numel(B, K * N, "gemm B");
  check_numel(C, M * N, "gemm C");
  gemm_strided_batched(ta, tb, M, N, K, alpha, A, 0, B, 0, beta, C, 0, 1);
}

void Ops::gemm_strided_batched(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                               const Tensor& A, int64_t sa, const Tensor& B, int64_t sb,
                               double beta, Tensor C, int64_t sc, int64_t batch) {
  SY_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm dims M={} N={} K={}", M, N, K);
  SY_CHECK(batch >= 1 && sa >= 0 && sb >= 0 && sc >= 0, "gemm batch {} strides {} {} {}", batch,
           sa, sb, sc);
  SY_CHECK(A.numel() >= (batch - 1) * sa + M * K, "gemm A {} too small for {} × [{}, {}]",
           A.shape_str(), batch, M, K);
  SY_CHECK(B.numel() >= (batch - 1) * sb + K * N, "gemm B {} too small for {} × [{}, {}]",
           B.shape_str(), batch, K, N);
  SY_CHECK(C.numel() >= (batch - 1) * sc + M * N, "gemm C {} too small for {} × [{}, {}]",
           C.shape_str(), batch, M, N);
  // Outputs of a batch must not overlap, or members would race on them.
  SY_CHECK(batch == 1 || sc >= M * N, "gemm C stride {} < M·N = {}: outputs overlap", sc, M * N);
  check_floating(A, "gemm A");
  check_dtype(B, A.dtype, "gemm B");
  check_dtype(C, A.dtype, "gemm C");
  check_device(B, device(), "gemm B");
  check_device(C, device(), "gemm C");
  if (M == 0 || N == 0) return;
  if (K == 0) {
    // An empty inner dimension: C = beta·C, and beta = 0 writes zeros without
    // reading C (so NaN there becomes 0), as BLAS defines it. Done here, the same
    // for every backend, rather than trusting each library's corner case.
    for (int64_t i = 0; i < batch; ++i) {
      const Tensor c = C.view({M * N}, i * sc);
      if (beta == 0.0) fill(c, 0.0);
      else if (beta != 1.0) scale(c, beta);
    }
    return;
  }
  gemm_impl(ta, tb, M, N, K, alpha, A, sa, B, sb, beta, C, sc, batch);
}

// ---- embedding -------------------------------------------------------------------------

// ids [B,T] (i32) index the rows of the table [V,C]; `rows` [B,T,C] and the
// positions [≥ T, C] (empty allowed where `positions_optional`) share its dtype.
void Ops::check_embedding(const Tensor& ids, const Tensor& table, const Tensor& rows,
                          const Tensor& positions, bool positions_optional, const char* names[3]) {
  SY_CHECK(ids.ndim == 2 && table.ndim == 2, "embedding: ids {} must be [B,T], {} {} [V,C]",
           ids.shape_str(), names[0], table.shape_str());
  const int64_t Tn = ids.dim(1), C = table.dim(1);
  check_index(ids, device(), "embedding ids");
  check_floating(table, names[0]);
  check_numel(rows, ids.numel() * C, names[1]);
  check_same(table.dtype, device(), {{rows, names[1]}});
  if (positions_optional && positions.empty()) return;
  SY_CHECK(positions.ndim == 2 && positions.dim(0) >= Tn && positions.dim(1) == C,
           "{} {} must be [≥ {}, {}]", names[2], positions.shape_str(), Tn, C);
  check_same(table.dtype, device(), {{positions, names[2]}});
}

void Ops::embedding_forward(Tensor out, const Tensor& ids, const Tensor& wte, const Tensor& wpe) {
  const char* names[3] = {"embedding wte", "embedding out", "embedding wpe"};
  check_embedding(ids, wte, out, wpe, false, names);
  check_token_ids(ids, wte.dim(0));
  if (out.numel() > 0) embedding_forward_impl(out, ids, wte, wpe);
}

void Ops::embedding_backward(Tensor dwte, Tensor dwpe, const Tensor& dout, const Tensor& ids) {
  const char* names[3] = {"embedding dwte", "embedding dout", "embedding dwpe"};
  check_embedding(ids, dwte, dout, dwpe, true, names);
  check_token_ids(ids, dwte.dim(0));
  if (dout.numel() > 0) embedding_backward_impl(dwte, dwpe, dout, ids);
}

// ---- normalisation ---------------------------------------------------------------------

namespace {
struct NormDims {
  int64_t N, C;
};
}  // namespace

static NormDims norm_dims(const Tensor& x, const Tensor& w) {
  const int64_t C = w.numel();
  SY_CHECK(C > 0 && x.numel() % C == 0, "norm x {} is not rows of the weight's width {}",
           x.shape_str(), C);
  return {x.numel() / C, C};
}

void Ops::norm_forward(NormKind kind, Tensor out, Tensor mean, Tensor rstd, const Tensor& x,
                       const Tensor& w, const Tensor& b, double eps) {
  const auto [N, C] = norm_dims(x, w);
  check_floating(x, "norm x");
  check_same(x.dtype, device(), {{w, "norm w"}, {out, "norm out"}, {rstd, "norm rstd"}});
  check_numel(out, N * C, "norm out");
  check_numel(rstd, N, "norm rstd");
  SY_CHECK(eps > 0, "norm eps {} must be positive", eps);
  if (kind == NormKind::layernorm) {
    check_numel(b, C, "layernorm bias");
    check_numel(mean, N, "layernorm mean");
    check_same(x.dtype, device(), {{b, "layernorm bias"}, {mean, "layernorm mean"}});
  }
  if (N > 0) norm_forward_impl(kind, out, mean, rstd, x, w, b, eps);
}

void Ops::norm_backward(NormKind kind, Tensor dx, Tensor dw, Tensor db, const Tensor& dout,
                        const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd) {
  const auto [N, C] = norm_dims(x, w);
  check_floating(x, "norm x");
  check_same(x.dtype, device(),
             {{w, "norm w"}, {dx, "norm dx"}, {dw, "norm dw"}, {dout, "norm dout"},
              {rstd, "norm rstd"}});
  check_numel(dx, N * C, "norm dx");
  check_numel(dout, N * C, "norm dout");
  check_numel(dw, C, "norm dw");
  check_numel(rstd, N, "norm rstd");
  if (kind == NormKind::layernorm) {
    check_numel(db, C, "layernorm db");
    check_numel(mean, N, "layernorm mean");
    check_same(x.dtype, device(), {{db, "layernorm db"}, {mean, "layernorm mean"}});
  }
  if (N > 0) norm_backward_impl(kind, dx, dw, db, dout, x, w, mean, rstd);
}

// ---- activations -----------------------------------------------------------------------

void Ops::activation_forward(Activation act, Tensor out, const Tensor& x) {
  check_floating(x, "activation x");
  check_numel(out, x.numel(), "activation out");
  check_same(x.dtype, device(), {{out, "activation out"}});
  if (x.numel() > 0) activation_forward_impl(act, out, x);
}

void Ops::activation_backward(Activation act, Tensor dx, const Tensor& dout, const Tensor& x) {
  check_floating(x, "activation x");
  check_numel(dx, x.numel(), "activation dx");
  check_numel(dout, x.numel(), "activation dout");
  check_same(x.dtype, device(), {{dx, "activation dx"}, {dout, "activation dout"}});
  if (x.numel() > 0) activation_backward_impl(act, dx, dout, x);
}

void Ops::glu_forward(Activation act, Tensor h, const Tensor& ag) {
  check_floating(h, "glu h");
  const int64_t H = h.ndim > 0 ? h.dim(-1) : 0, N = H > 0 ? h.numel() / H : 0;
  SY_CHECK(H > 0, "glu h {} has no hidden width", h.shape_str());
  check_numel(ag, N * 2 * H, "glu ag");
  check_same(h.dtype, device(), {{ag, "glu ag"}});
  if (N > 0) glu_forward_impl(act, h, ag);
}

void Ops::glu_backward(Activation act, Tensor dag, const Tensor& dh, const Tensor& ag) {
  check_floating(dh, "glu dh");
  const int64_t H = dh.ndim > 0 ? dh.dim(-1) : 0, N = H > 0 ? dh.numel() / H : 0;
  SY_CHECK(H > 0, "glu dh {} has no hidden width", dh.shape_str());
  check_numel(ag, N * 2 * H, "glu ag");
  check_numel(dag, N * 2 * H, "glu dag");
  check_same(dh.dtype, device(), {{ag, "glu ag"}, {dag, "glu dag"}});
  if (N > 0) glu_backward_impl(act, dag, dh, ag);
}

// ---- softmax ---------------------------------------------------------------------------

void Ops::softmax_forward(Tensor out, const Tensor& x) {
  check_floating(x, "softmax x");
  SY_CHECK(x.ndim > 0 && x.dim(-1) > 0, "softmax x {} has no columns", x.shape_str());
  check_numel(out, x.numel(), "softmax out");
  check_same(x.dtype, device(), {{out, "softmax out"}});
  if (x.numel() > 0) softmax_forward_impl(out, x);
}

void Ops::softmax_backward(Tensor dx, const Tensor& dout, const Tensor& out) {
  check_floating(out, "softmax out");
  SY_CHECK(out.ndim > 0 && out.dim(-1) > 0, "softmax out {} has no columns", out.shape_str());
  check_numel(dx, out.numel(), "softmax dx");
  check_numel(dout, out.numel(), "softmax dout");
  check_same(out.dtype, device(), {{dx, "softmax dx"}, {dout, "softmax dout"}});
  if (out.numel() > 0) softmax_backward_impl(dx, dout, out);
}

// ---- attention -------------------------------------------------------------------------

void Ops::attention_forward(Tensor out, AttentionCache& c, const Tensor& qkv, int64_t n_heads,
                            bool causal) {
  check_floating(qkv, "attention qkv");
  const AttnDims d = attention_dims(qkv, n_heads, c);
  check_numel(out, d.B * d.Tn * d.NH * d.D, "attention out");
  check_same(qkv.dtype, device(),
             {{out, "attention out"}, {c.q, "attention q"}, {c.k, "attention k"},
              {c.v, "attention v"}, {c.probs, "attention probs"},
              {c.out_heads, "attention out_heads"}});
  if (out.numel() > 0) attention_forward_impl(out, c, qkv, n_heads, causal);
}

void Ops::attention_backward(Tensor dqkv, AttentionCache& c, const Tensor& dout, int64_t n_heads,
                             bool causal) {
  check_floating(dqkv, "attention dqkv");
  const AttnDims d = attention_dims(dqkv, n_heads, c);
  const int64_t n = d.B * d.NH * d.Tn * d.D;
  check_numel(dout, n, "attention dout");
  check_numel(c.dq, n, "attention dq");
  check_numel(c.dk, n, "attention dk");
  check_numel(c.dv, n, "attention dv");
  check_numel(c.dprobs, d.B * d.NH * d.Tn * d.Tn, "attention dprobs");
  check_same(dqkv.dtype, device(),
             {{dout, "attention dout"}, {c.q, "attention q"}, {c.k, "attention k"},
              {c.v, "attention v"}, {c.probs, "attention probs"},
              {c.out_heads, "attention out_heads"}, {c.dq, "attention dq"},
              {c.dk, "attention dk"}, {c.dv, "attention dv"}, {c.dprobs, "attention dprobs"}});
  if (n > 0) attention_backward_impl(dqkv, c, dout, n_heads, causal);
}

// Shapes of fused attention: qkv [B,T,3C] with C = NH·D, D ≤ the kernel's limit.
static AttnDims fused_attention_dims(const Tensor& qkv, int64_t n_heads, const char* op) {
  SY_CHECK(qkv.ndim == 3 && qkv.dim(2) % 3 == 0, "{}: qkv must be [B,T,3C], got {}", op,
           qkv.shape_str());
  const int64_t C = qkv.dim(2) / 3;
  SY_CHECK(n_heads > 0 && C % n_heads == 0, "{}: C={} not divisible by {} heads", op, C, n_heads);
  const AttnDims d{qkv.dim(0), qkv.dim(1), n_heads, C / n_heads};
  SY_CHECK(d.D <= kFusedAttentionMaxHeadDim,
           "{}: head dim {} is above the fused kernel's {}; use attention_kernel: reference", op, d.D,
           kFusedAttentionMaxHeadDim);
  return d;
}

void Ops::attention_fused_forward(Tensor out, Tensor lse, const Tensor& qkv, int64_t n_heads,
                                  bool causal) {
  check_floating(qkv, "attention_fused qkv");
  const AttnDims d = fused_attention_dims(qkv, n_heads, "attention_fused_forward");
  check_numel(out, d.B * d.Tn * d.NH * d.D, "attention_fused out");
  check_numel(lse, d.B * d.NH * d.Tn, "attention_fused lse");
  check_same(qkv.dtype, device(), {{out, "attention_fused out"}, {lse, "attention_fused lse"}});
  if (out.numel() > 0) attention_fused_forward_impl(out, lse, qkv, n_heads, causal);
}

void Ops::attention_fused_backward(Tensor dqkv, Tensor delta, const Tensor& dout, const Tensor& qkv,
                                   const Tensor& out, const Tensor& lse, int64_t n_heads,
                                   bool causal) {
  check_floating(qkv, "attention_fused qkv");
  const AttnDims d = fused_attention_dims(qkv, n_heads, "attention_fused_backward");
  const int64_t n = d.B * d.Tn * d.NH * d.D;
  check_numel(dqkv, 3 * n, "attention_fused dqkv");
  check_numel(dout, n, "attention_fused dout");
  check_numel(out, n, "attention_fused out");
  check_numel(lse, d.B * d.NH * d.Tn, "attention_fused lse");
  check_numel(delta, d.B * d.NH * d.Tn, "attention_fused delta");
  check_same(qkv.dtype, device(),
             {{dqkv, "attention_fused dqkv"}, {dout, "attention_fused dout"},
              {out, "attention_fused out"}, {lse, "attention_fused lse"},
              {delta, "attention_fused delta"}});
  if (n > 0) attention_fused_backward_impl(dqkv, delta, dout, qkv, out, lse, n_heads, causal);
}

void Ops::attention_decode(Tensor out, const Tensor& qkv, Tensor k_cache, Tensor v_cache, Tensor scores,
                           int64_t position, int64_t n_heads) {
  check_floating(qkv, "attention_decode qkv");
  SY_CHECK(qkv.ndim == 2 && qkv.dim(1) % 3 == 0, "attention_decode: qkv must be [B, 3C], got {}",
           qkv.shape_str());
  const int64_t B = qkv.dim(0), C = qkv.dim(1) / 3;
  SY_CHECK(n_heads >= 1 && C % n_heads == 0, "attention_decode: {} heads do not divide C = {}", n_heads, C);
  SY_CHECK(k_cache.ndim == 3 && k_cache.dim(0) == B && k_cache.dim(2) == C,
           "attention_decode: k_cache must be [B={}, L, C={}], got {}", B, C, k_cache.shape_str());
  const int64_t L = k_cache.dim(1);
  SY_CHECK(v_cache.ndim == 3 && v_cache.dim(0) == B && v_cache.dim(1) == L && v_cache.dim(2) == C,
           "attention_decode: v_cache must be [{}, {}, {}], got {}", B, L, C, v_cache.shape_str());
  SY_CHECK(position >= 0 && position < L, "attention_decode: position {} outside the cache of {} rows",
           position, L);
  check_numel(out, B * C, "attention_decode out");
  check_numel(scores, B * n_heads * L, "attention_decode scores");
  check_same(qkv.dtype, device(),
             {{out, "attention_decode out"}, {k_cache, "attention_decode k_cache"},
              {v_cache, "attention_decode v_cache"}, {scores, "attention_decode scores"}});
  if (B > 0 && C > 0) attention_decode_impl(out, qkv, k_cache, v_cache, scores, position, n_heads);
}

// ---- loss ------------------------------------------------------------------------------

void Ops::cross_entropy_forward(Tensor loss, Tensor nll, Tensor lse, const Tensor& logits,
                                const Tensor& targets, double smoothing) {
  check_floating(logits, "cross_entropy logits");
  const int64_t V = logits.ndim > 0 ? logits.dim(-1) : 0;
  SY_CHECK(V > 0, "cross_entropy logits {} has no vocabulary", logits.shape_str());
  const int64_t N = logits.numel() / V;
  check_index(targets, device(), "cross_entropy targets");
  check_numel(targets, N, "cross_entropy targets");
  check_numel(loss, N, "cross_entropy loss");
  check_numel(nll, N, "cross_entropy nll");
  check_numel(lse, N, "cross_entropy lse");
  check_same(logits.dtype, device(),
             {{loss, "cross_entropy loss"}, {nll, "cross_entropy nll"}, {lse, "cross_entropy lse"}});
  SY_CHECK(smoothing >= 0 && smoothing < 1, "cross_entropy smoothing {} outside [0, 1)", smoothing);
  check_targets(targets, V);
  if (N > 0) cross_entropy_forward_impl(loss, nll, lse, logits, targets, smoothing);
}

void Ops::cross_entropy_backward(Tensor dlogits, const Tensor& logits, const Tensor& lse,
                                 const Tensor& targets, double smoothing, double scale) {
  check_floating(logits, "cross_entropy logits");
  const int64_t V = logits.ndim > 0 ? logits.dim(-1) : 0;
  SY_CHECK(V > 0, "cross_entropy logits {} has no vocabulary", logits.shape_str());
  const int64_t N = logits.numel() / V;
  check_index(targets, device(), "cross_entropy targets");
  check_numel(targets, N, "cross_entropy targets");
  check_numel(dlogits, N * V, "cross_entropy dlogits");
  check_numel(lse, N, "cross_entropy lse");
  check_same(logits.dtype, device(), {{dlogits, "cross_entropy dlogits"}, {lse, "cross_entropy lse"}});
  SY_CHECK(smoothing >= 0 && smoothing < 1, "cross_entropy smoothing {} outside [0, 1)", smoothing);
  check_targets(targets, V);
  if (N > 0) cross_entropy_backward_impl(dlogits, logits, lse, targets, smoothing, scale);
}

// ---- MoE dispatch and combine ----------------------------------------------------------

void Ops::gather_rows(Tensor out, const Tensor& x, const Tensor& rows, const Tensor& w) {
  check_floating(x, "gather_rows x");
  const int64_t C = x.ndim > 0 ? x.dim(-1) : 0;
  SY_CHECK(C > 0, "gather_rows x {} has no columns", x.shape_str());
  const int64_t N = x.numel() / C, S = rows.numel();
  check_index(rows, device(), "gather_rows rows");
  check_numel(out, S * C, "gather_rows out");
  check_same(x.dtype, device(), {{out, "gather_rows out"}});
  if (!w.empty()) {
    check_numel(w, S, "gather_rows weights");
    check_same(x.dtype, device(), {{w, "gather_rows weights"}});
  }
  check_index_range(rows, N, "gather_rows rows", -1);
  if (S > 0) gather_rows_impl(out, x, rows, w);
}

void Ops::combine_rows(Tensor out, const Tensor& y, const Tensor& begin, const Tensor& slots,
                       const Tensor& w) {
  check_floating(out, "combine_rows out");
  const int64_t C = out.ndim > 0 ? out.dim(-1) : 0;
  SY_CHECK(C > 0, "combine_rows out {} has no columns", out.shape_str());
  SY_CHECK(y.numel() % C == 0, "combine_rows y {} is not rows of width {}", y.shape_str(), C);
  const int64_t N = out.numel() / C, S = y.numel() / C;
  check_index(begin, device(), "combine_rows begin");
  check_index(slots, device(), "combine_rows slots");
  check_numel(begin, N + 1, "combine_rows begin");
  check_same(out.dtype, device(), {{y, "combine_rows y"}});
  if (!w.empty()) {
    check_numel(w, S, "combine_rows weights");
    check_same(out.dtype, device(), {{w, "combine_rows weights"}});
  }
  check_csr(begin, slots, S, "combine_rows");
  if (N > 0) combine_rows_impl(out, y, begin, slots, w);
}

void Ops::row_dots(Tensor out, const Tensor& a, const Tensor& b, const Tensor& rows) {
  check_floating(a, "row_dots a");
  const int64_t C = a.ndim > 0 ? a.dim(-1) : 0;
  SY_CHECK(C > 0, "row_dots a {} has no columns", a.shape_str());
  SY_CHECK(b.numel() % C == 0, "row_dots b {} is not rows of width {}", b.shape_str(), C);
  const int64_t S = a.numel() / C, N = b.numel() / C;
  check_index(rows, device(), "row_dots rows");
  check_numel(rows, S, "row_dots rows");
  check_numel(out, S, "row_dots out");
  check_same(a.dtype, device(), {{b, "row_dots b"}, {out, "row_dots out"}});
  check_index_range(rows, N, "row_dots rows", -1);
  if (S > 0) row_dots_impl(out, a, b, rows);
}

// ---- MoE routing ---------------------------------------------------------------------------
namespace {
void check_route(const Ops& ops, const RoutePlanTensors& plan, const RouteState& st, const RouteInputs& in,
                 const RouteSpec& s, const char* what) {
  SY_CHECK(s.groups > 0 && s.members > 0 && s.experts > 0, "{}: {} groups of {} members over {} experts", what,
           s.groups, s.members, s.experts);
  SY_CHECK(s.capacity >= 1 && s.capacity <= s.members, "{}: capacity {} outside [1, {}] (the group size)", what,
           s.capacity, s.members);
  SY_CHECK(s.seq == 0 || s.seq == s.groups, "{}: by-position groups are one per position: {} groups, seq {}",
           what, s.groups, s.seq);
  SY_CHECK(s.rule != RouteRule::top2 || s.experts >= 2, "{}: top-2 needs 2 experts", what);
  SY_CHECK(s.rule != RouteRule::topk || (s.top_k >= 1 && s.top_k <= std::min(s.experts, kRouteMaxTopK) &&
                                         s.experts <= kRouteMaxTopkExperts),
           "{}: top-{} of {} experts (at most top-{} of {})", what, s.top_k, s.experts, kRouteMaxTopK,
           kRouteMaxTopkExperts);
  const int64_t N = s.rows(), E = s.experts;
  check_numel(in.probs, N * E, what);
  check_numel(in.logits, N * E, what);
  if (s.rule == RouteRule::topk && s.noisy) check_numel(in.noise_logits, N * E, what);
  check_numel(st.lse, N, what);
  check_numel(st.first_count, s.groups * E, what);
  check_numel(st.stats, route_stats_size(E), what);
  check_index(st.scratch, ops.device(), what);
  SY_CHECK(st.scratch.bytes() >= Ops::route_scratch_bytes(s), "{}: scratch has {} bytes of the {} it needs", what,
           st.scratch.bytes(), Ops::route_scratch_bytes(s));
  check_numel(plan.slot_row, s.slots(), what);
  check_numel(plan.slot_gate, s.slots(), what);
  check_numel(plan.token_begin, N + 1, what);
  check_numel(plan.token_slots, s.slots(), what);
  check_index(plan.slot_row, ops.device(), what);
  check_index(plan.token_begin, ops.device(), what);
  check_index(plan.token_slots, ops.device(), what);
  check_same(in.probs.dtype, ops.device(),
             {{in.logits, "route logits"}, {plan.slot_gate, "route slot_gate"}, {st.first_count, "route first_count"},
              {st.lse, "route lse"}, {st.stats, "route stats"}});
  if (s.rule == RouteRule::topk && s.noisy) check_same(in.probs.dtype, ops.device(), {{in.noise_logits, "route noise_logits"}});
}
}  // namespace

size_t Ops::route_scratch_bytes(const RouteSpec& spec) {
  // The algorithms' layout (route::carve in route_algorithms.h), mirrored without
  // their headers: five arrays over the larger of candidates and slots, partial
  // sums, per-row values, noisy top-k's scores and group sums, alignment, and
  // Thrust's temporaries.
  const int64_t N = spec.rows(), E = spec.experts, G = spec.groups;
  const int64_t cand = spec.rule == RouteRule::expert_choice ? N * E : N * spec.choices();
  const size_t M = static_cast<size_t>(std::max(cand, spec.slots()));
  const auto chunks = [](int64_t n) { return static_cast<size_t>((n + 1023) / 1024); };
  const size_t sums = static_cast<size_t>(2 * G * E) + 7 * chunks(N) + 2 * chunks(static_cast<int64_t>(M)) + 8;
  const size_t topk = spec.rule == RouteRule::topk ? static_cast<size_t>(4 * N * E + 4 * G * E + 2 * G) : 0;
  const size_t rows = static_cast<size_t>(4 * N + G * E);  // row values, fractions
  return M * 36 + (sums + topk + rows) * 8 + static_cast<size_t>(N) * 4 + (M * 32 + (size_t{4} << 20)) + 24 * 256;
}

void Ops::jitter_rows(Tensor out, const Tensor& in, const JitterSpec& spec) {
  SY_CHECK(routes_on_backend(), "routing on the {} backend is not in this build", name());
  check_floating(in, "jitter_rows in");
  SY_CHECK(in.ndim == 2, "jitter_rows in must be [N, width], got {}", in.shape_str());
  check_numel(out, in.numel(), "jitter_rows out");
  check_same(in.dtype, device(), {{out, "jitter_rows out"}});
  SY_CHECK(spec.eps >= 0 && spec.eps < 1, "jitter_rows eps {} outside [0, 1)", spec.eps);
  if (in.numel() > 0) jitter_rows_impl(out, in, spec);
}

void Ops::jitter_rows_impl(Tensor, const Tensor&, const JitterSpec&) {
  SY_CHECK(false, "{} does not route on the backend", name());
}

void Ops::route_plan(const RoutePlanTensors& plan, const RouteState& state, const RouteInputs& in,
                     const RouteSpec& spec) {
  SY_CHECK(routes_on_backend(), "routing on the {} backend is not in this build: build with the CUDA "
           "toolkit's CCCL (Thrust) headers, or set moe.device_routing: false", name());
  check_floating(in.probs, "route_plan probs");
  check_route(*this, plan, state, in, spec, "route_plan");
  route_plan_impl(plan, state, in, spec);
}

void Ops::route_backward(Tensor dlogits, Tensor dnoise_logits, const Tensor& dgate, const RoutePlanTensors& plan,
                         const RouteState& state, const RouteInputs& in, const RouteSpec& spec, double aux_scale,
                         double z_scale) {
  SY_CHECK(routes_on_backend(), "routing on the {} backend is not in this build", name());
  check_floating(in.probs, "route_backward probs");
  check_route(*this, plan, state, in, spec, "route_backward");
  check_numel(dlogits, spec.rows() * spec.experts, "route_backward dlogits");
  check_numel(dgate, spec.slots(), "route_backward dgate");
  check_same(in.probs.dtype, device(), {{dlogits, "route_backward dlogits"}, {dgate, "route_backward dgate"}});
  if (spec.rule == RouteRule::topk && spec.noisy) {
    check_numel(dnoise_logits, spec.rows() * spec.experts, "route_backward dnoise_logits");
    check_same(in.probs.dtype, device(), {{dnoise_logits, "route_backward dnoise_logits"}});
  }
  check_csr(plan.token_begin, plan.token_slots, spec.slots(), "route_backward");
  route_backward_impl(dlogits, dnoise_logits, dgate, plan, state, in, spec, aux_scale, z_scale);
}

void Ops::route_plan_impl(const RoutePlanTensors&, const RouteState&, const RouteInputs&, const RouteSpec&) {
  SY_CHECK(false, "{} does not route on the backend", name());
}

void Ops::route_backward_impl(Tensor, Tensor, const Tensor&, const RoutePlanTensors&, const RouteState&,
                              const RouteInputs&, const RouteSpec&, double, double) {
  SY_CHECK(false, "{} does not route on the backend", name());
}

// ---- elementwise helpers ---------------------------------------------------------------

void Ops::add(Tensor y, const Tensor& x) {
  check_floating(x, "add x");
  check_numel(y, x.numel(), "add y");
  check_same(x.dtype, device(), {{y, "add y"}});
  if (x.numel() > 0) add_impl(y, x);
}

void Ops::scale(Tensor x, double s) {
  check_floating(x, "scale x");
  if (x.numel() > 0) scale_impl(x, s);
}

double Ops::sum_squares(const Tensor& x) {
  check_floating(x, "sum_squares x");
  return x.numel() > 0 ? sum_impl(x, true) : 0.0;
}

double Ops::sum(const Tensor& x) {
  check_floating(x, "sum x");
  return x.numel() > 0 ? sum_impl(x, false) : 0.0;
}

// ---- optimizer -------------------------------------------------------------------------

void Ops::adam_update(Tensor param, const Tensor& grad, Tensor m, Tensor v, const AdamArgs& a) {
  check_floating(param, "adam param");
  const int64_t n = param.numel();
  check_numel(grad, n, "adam grad");
  check_numel(m, n, "adam m");
  check_numel(v, n, "adam v");
  check_same(param.dtype, device(), {{grad, "adam grad"}, {m, "adam m"}, {v, "adam v"}});
  SY_CHECK(a.step >= 1, "adam step {} must be ≥ 1", a.step);
  if (n > 0) adam_update_impl(param, grad, m, v, a);
}

}  // namespace sy
