#pragma once
// The op interface model code calls. Every backend (cpu/, cuda/) implements all of
// it behind one checked front; tests/backend checks each op against a naive
// double-precision reference.
//
// Conventions (all ops):
// - Tensors are contiguous row-major views; shapes are checked on every call, by the
//   front (src/backend/ops.cpp), before any backend runs.
// - Floating tensors of one call share a dtype (f32, or f64 on CPU for gradient checks).
// - Backward ops WRITE the gradients of their inputs, except where a parameter says
//   `accumulate`: parameter gradients are always ACCUMULATED (+=), so gradient
//   accumulation over micro-batches needs no extra pass, and norm_backward adds into
//   dx because it sits on the residual stream, whose gradient is already there.
// - No op allocates memory: scratch space is passed in by the caller.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/tensor.h"

namespace sy {

enum class Activation { gelu, silu, relu };
enum class NormKind { layernorm, rmsnorm };

const char* activation_name(Activation a);
const char* norm_name(NormKind n);

// Scratch an attention call keeps between forward and backward.
struct AttentionCache {
  Tensor q, k, v;  // [B, NH, T, D] each: heads split out of qkv
  Tensor probs;    // [B, NH, T, T] softmax(q·kᵀ/√D) after the mask
  Tensor out_heads;  // [B, NH, T, D]: probs·v before the heads are merged
  Tensor dq, dk, dv;  // [B, NH, T, D]: backward scratch
  Tensor dprobs;      // [B, NH, T, T]: backward scratch
};

// Fused attention works on tiles of this many keys (and, in its backward, queries);
// the CPU and CUDA implementations use the same tiles, so that with bf16 operands
// they round the same running probabilities. 32: one key per lane of a warp.
constexpr int64_t kFusedAttentionTile = 32;
// The largest head dim fused attention takes (its CUDA kernel keeps a row in
// registers, D / 32 values per lane, and tiles of [32, D] in shared memory).
constexpr int64_t kFusedAttentionMaxHeadDim = 128;

// ---- MoE routing on the backend's memory (Ops::route_plan) --------------------------------
// The fixed-capacity rules of docs/routing.md, for groups of equal size: switch_top1
// (top1), gshard_top2 (top2), noisy_topk (topk) and expert choice. Group g's member
// m is row g·members + m (contiguous groups) or m·seq + g (by-position groups,
// seq > 0: group g is position g of every sequence).
enum class RouteRule : uint8_t { top1, top2, topk, expert_choice };
struct RouteSpec {
  RouteRule rule = RouteRule::top1;
  int64_t groups = 0, members = 0, seq = 0;
  int64_t experts = 0, capacity = 0;  // E; C slots per expert per group
  // top2: the second choice is kept only if 2·gate > u, u the Philox uniform of
  // (seed, stream, first_token + row); without second_random it is always kept.
  bool second_random = false;
  uint64_t seed = 0, stream = 0;
  int64_t first_token = 0;
  // topk: k, and in training the noise h = z + n·(softplus(noise_logits) + 0.01),
  // n the Philox normal of (seed, noise_stream, (first_token + row)·E + e); the
  // importance and load losses' weights.
  int64_t top_k = 1;
  bool noisy = false;
  uint64_t noise_stream = 0;
  double w_importance = 0, w_load = 0;

  // (constexpr: device code calls them too)
  constexpr int64_t rows() const { return groups * members; }
  constexpr int64_t choices() const {  // token choice: choices per token
    return rule == RouteRule::top2 ? 2 : rule == RouteRule::topk ? top_k : 1;
  }
  constexpr int64_t slots() const { return experts * groups * capacity; }
};
// topk on the backend keeps a row's gradients per thread (at most this many
// experts) and its top k + 1 (k at most kRouteMaxTopK).
constexpr int64_t kRouteMaxTopkExperts = 256;
constexpr int64_t kRouteMaxTopK = 16;
// The statistics route_plan writes: [E] filled slots per expert, [E] Σ over groups
// of each expert's C-th largest score (expert choice: the threshold samples), then
// these sums (the tail).
// aux_sum: Σ over groups of the router's unweighted auxiliary loss (switch and
// gshard: E·Σ f·P; noisy top-k: w_importance·CV²(importance) + w_load·CV²(load));
// importance_cv2 / load_cv2: the last group's (what the host reports).
enum class RouteStat : int { dropped, aux_sum, gate_sum, entropy_sum, lse2_sum, importance_cv2, load_cv2, histogram };
inline int64_t route_stats_size(int64_t experts) { return 2 * experts + static_cast<int64_t>(RouteStat::histogram) + 5; }
// The router input's multiplicative jitter: out[i] = in[i] · (1 − eps + 2·eps·u),
// u the 53-bit Philox uniform of (seed, stream, (first_token + row)·width + column).
struct JitterSpec {
  uint64_t seed = 0, stream = 0;
  int64_t first_token = 0;
  double eps = 0;
};
// A plan on the backend's memory. Slot k = (e·G + g)·C + position: expert-major,
// then group, then the order the rule filled it; every expert has G·C slots.
struct RoutePlanTensors {
  Tensor slot_row;     // i32 [slots]: row of x, −1 when the slot is empty
  Tensor slot_gate;    // [slots]: combine weight (0 when empty)
  Tensor token_begin;  // i32 [N + 1]: row t's slots are token_slots[begin[t] .. begin[t+1])
  Tensor token_slots;  // i32 [slots]: filled slots by row, then slot (empty ones last)
};
// What routing reads: the router's logits and probabilities [N, E], and noisy
// top-k's noise logits x·W_noiseᵀ [N, E] (training; empty otherwise).
struct RouteInputs {
  Tensor logits, probs, noise_logits;
};
// What route_plan leaves for route_backward.
struct RouteState {
  Tensor first_count;  // [G, E] members whose first choice is e (switch, gshard)
  Tensor lse;          // [N] of the logits (the backward reads its double copy in scratch)
  Tensor stats;        // [route_stats_size(E)]
  Tensor scratch;      // i32 [⌈route_scratch_bytes / 4⌉]: noisy top-k keeps its scores here
};

// The front every caller uses. Each public op checks its arguments once (shapes,
// dtypes, sizes, and index values where they sit in host memory: op_checks.h),
// then calls the backend's implementation, the protected `*_impl` of the same
// name. A backend never sees a call that breaks the contract below, and a new
// backend inherits every check.
class Ops : public Allocator {
 public:
  ~Ops() override = default;
  virtual std::string name() const = 0;
  // The floating dtypes this backend computes in (CPU: f32 and f64; CUDA: f32).
  virtual bool computes_in(DType t) const = 0;

  // ---- memory -----------------------------------------------------------------
  void copy(Tensor dst, const Tensor& src);  // same dtype and numel
  void to_host(void* dst, const Tensor& src);
  // How many to_host calls this backend has served: each one waits for the device
  // (what the MoE layer's "host synchronisations" count).
  uint64_t host_reads() const { return host_reads_; }
  void from_host(Tensor dst, const void* src);
  void fill(Tensor x, double value);
  virtual void synchronize() {}
  // Threads for host-side work (CPU backend: OpenMP and OpenBLAS); 0 = every core.
  virtual void set_threads(int n) { (void)n; }
  // Bytes of memory this backend's device has in all (host RAM, or the GPU's).
  virtual uint64_t memory_capacity() const = 0;
  // Bytes allocated through this backend (buffers and its own scratch): now, and the
  // most at any one time since it was made. Library workspaces (cuBLAS, NCCL) and
  // the CUDA context are not counted.
  uint64_t bytes_in_use() const { return in_use_; }
  uint64_t peak_bytes() const { return peak_; }

  // bf16 operands (config `precision: bf16`): every f32 gemm rounds A and B to
  // bf16 (round_to_bf16) and accumulates in fp32, as tensor cores do; C stays fp32.
  // Everything else (norms, softmax, loss, Adam, the fp32 master weights) is
  // unchanged. Backends without it refuse it (supports_bf16_operands()).
  void set_bf16_operands(bool on);
  bool bf16_operands() const { return bf16_operands_; }
  virtual bool supports_bf16_operands() const { return false; }
  // fp32 operands for this object's lifetime, whatever the mode (the router's
  // products: its math stays fp32 by the design).
  class Fp32Operands {
   public:
    explicit Fp32Operands(Ops& ops) : ops_(ops), was_(ops.bf16_operands_) { ops.bf16_operands_ = false; }
    ~Fp32Operands() { ops_.bf16_operands_ = was_; }
    Fp32Operands(const Fp32Operands&) = delete;
    Fp32Operands& operator=(const Fp32Operands&) = delete;

   private:
    Ops& ops_;
    bool was_;
  };

  // ---- matrix products ------------------------------------------------------------
  // C[M,N] = alpha·op(A)·op(B) + beta·C with op(X) = X or Xᵀ; op(A) is [M,K], op(B) [K,N].
  // K = 0 gives C = beta·C, and beta = 0 never reads C (NaN there becomes 0), as in BLAS.
  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
            const Tensor& A, const Tensor& B, double beta, Tensor C);
  // `batch` independent gemms; member i reads A + i·stride_a etc. (strides in elements).
  void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                            double alpha, const Tensor& A, int64_t stride_a, const Tensor& B,
                            int64_t stride_b, double beta, Tensor C, int64_t stride_c,
                            int64_t batch);

  // ---- embedding ------------------------------------------------------------------
  // out[b,t,:] = wte[ids[b,t],:] + wpe[t,:]. ids: i32 [B,T]; wte [V,C]; wpe [Tmax ≥ T, C].
  void embedding_forward(Tensor out, const Tensor& ids, const Tensor& wte, const Tensor& wpe);
  // dwte[ids[b,t],:] += dout[b,t,:]; dwpe[t,:] += Σ_b dout[b,t,:] (skipped if dwpe is empty).
  void embedding_backward(Tensor dwte, Tensor dwpe, const Tensor& dout, const Tensor& ids);

  // ---- normalisation (over the last dim C of x [N,C]) -------------------------------
  // layernorm: (x-μ)·rstd·w + b;  rmsnorm: x·rstd·w (b unused, may be empty).
  // mean, rstd: [N] saved for backward (mean unused by rmsnorm, may be empty).
  void norm_forward(NormKind kind, Tensor out, Tensor mean, Tensor rstd, const Tensor& x,
                    const Tensor& w, const Tensor& b, double eps);
  // dx += ∂L/∂x; dw, db accumulate (db ignored for rmsnorm).
  void norm_backward(NormKind kind, Tensor dx, Tensor dw, Tensor db, const Tensor& dout,
                     const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd);

  // ---- activations (elementwise) -----------------------------------------------------
  void activation_forward(Activation act, Tensor out, const Tensor& x);
  void activation_backward(Activation act, Tensor dx, const Tensor& dout, const Tensor& x);
  // Gated linear unit on ag [N, 2H] = [a | g] per row: h[N,H] = act(a) ⊙ g.
  void glu_forward(Activation act, Tensor h, const Tensor& ag);
  void glu_backward(Activation act, Tensor dag, const Tensor& dh, const Tensor& ag);

  // ---- softmax over the last dim ---------------------------------------------------
  void softmax_forward(Tensor out, const Tensor& x);
  void softmax_backward(Tensor dx, const Tensor& dout, const Tensor& out);

  // ---- attention ---------------------------------------------------------------------
  // qkv [B,T,3C] (q | k | v, each C = NH·D, head-major) → out [B,T,C].
  void attention_forward(Tensor out, AttentionCache& cache, const Tensor& qkv, int64_t n_heads,
                         bool causal);
  // Writes dqkv [B,T,3C] from dout [B,T,C] (cache as filled by the forward).
  void attention_backward(Tensor dqkv, AttentionCache& cache, const Tensor& dout,
                          int64_t n_heads, bool causal);

  // Fused (flash-style) attention: the function of attention_forward, computed
  // kFusedAttentionTile keys at a time with an online softmax, reading q, k, v in
  // place in qkv [B,T,3C] and writing out [B,T,C]; the [T,T] probabilities never
  // exist. lse [B,NH,T]: each row's log Σ exp(scaled scores), saved for the backward,
  // which recomputes the probabilities from it. Head dim ≤ kFusedAttentionMaxHeadDim.
  // With bf16 operands, q, k, v, dout, the tile's probabilities and their gradients
  // are rounded to bf16 where a tensor-core kernel multiplies them; the running sums
  // stay fp32.
  void attention_fused_forward(Tensor out, Tensor lse, const Tensor& qkv, int64_t n_heads,
                               bool causal);
  // Writes dqkv [B,T,3C] from dout [B,T,C], the forward's qkv, out and lse. delta:
  // scratch [B,NH,T] (Σ_d dout·out per row). No atomics: every gradient element is
  // summed by one thread in a fixed order, so two runs give the same bits.
  void attention_fused_backward(Tensor dqkv, Tensor delta, const Tensor& dout, const Tensor& qkv,
                                const Tensor& out, const Tensor& lse, int64_t n_heads,
                                bool causal);

  // One new position of causal attention over a cache (decoding). For each row b of
  // qkv [B, 3C] (q | k | v of position `position`): its k and v are written into
  // k_cache, v_cache [B, L, C] at row `position` (< L), then out[b] [C] = Σ_{t ≤ position}
  // softmax_t(q·k_t/√D) v_t per head (heads interleaved in C as in qkv). The same
  // function of the sequence as attention_forward's causal row `position`.
  // scores: scratch [B, NH, L].
  void attention_decode(Tensor out, const Tensor& qkv, Tensor k_cache, Tensor v_cache, Tensor scores,
                        int64_t position, int64_t n_heads);

  // ---- loss --------------------------------------------------------------------------
  // Label-smoothed cross-entropy fused with softmax, per row of logits [N,V]:
  //   loss = (1-ε)·(lse - z_y) + ε·(lse - mean_v z_v),  nll = lse - z_y,
  // with targets i32 [N]; a target < 0 marks a row without loss (loss = nll = 0).
  // lse [N] is saved for backward.
  void cross_entropy_forward(Tensor loss, Tensor nll, Tensor lse, const Tensor& logits,
                             const Tensor& targets, double smoothing);
  // dlogits = scale·(softmax(z) - (1-ε)·onehot(y) - ε/V); 0 on rows without a target.
  // dlogits may alias logits.
  void cross_entropy_backward(Tensor dlogits, const Tensor& logits, const Tensor& lse,
                              const Tensor& targets, double smoothing, double scale);

  // ---- MoE dispatch and combine (row permutations by index lists) ------------------------
  // out[i] = w[i] · x[rows[i]] (w empty: 1). rows: i32 [S]; x [N, C]; out [S, C].
  void gather_rows(Tensor out, const Tensor& x, const Tensor& rows, const Tensor& w);
  // out[t] += Σ_{j ∈ [begin[t], begin[t+1])} w[slots[j]] · y[slots[j]] (w empty: 1), summed
  // in j order (deterministic). begin: i32 [N+1]; slots: i32; y [S, C]; out [N, C].
  void combine_rows(Tensor out, const Tensor& y, const Tensor& begin, const Tensor& slots,
                    const Tensor& w);
  // out[i] = ⟨a[i], b[rows[i]]⟩. a [S, C]; b [N, C]; out [S].
  void row_dots(Tensor out, const Tensor& a, const Tensor& b, const Tensor& rows);
  // (gather_rows and row_dots: rows[i] = −1 marks an empty slot, whose out is 0.)

  // ---- MoE routing (RouteSpec above; docs/routing.md; the host rules are the oracle) -----
  // Whether this build routes on the backend (CPU: only when built with Thrust).
  virtual bool routes_on_backend() const { return false; }
  // Bytes of scratch route_plan needs (an i32 tensor of ⌈bytes/4⌉ words).
  static size_t route_scratch_bytes(const RouteSpec& spec);
  // out [N, width] = in ⊙ the jitter multipliers (the forward's, and its gradient's);
  // out may be in.
  void jitter_rows(Tensor out, const Tensor& in, const JitterSpec& spec);
  // The inputs → the padded plan and the state (statistics included).
  void route_plan(const RoutePlanTensors& plan, const RouteState& state, const RouteInputs& in,
                  const RouteSpec& spec);
  // dgate [slots] = ∂L/∂gate → dlogits [N, E] (written): through the gates, plus
  // aux_scale × every group's auxiliary loss (balance: f fixed; noisy top-k:
  // importance and load) and z_scale × Σ_t lse_t² / N; noisy top-k in training also
  // writes dnoise_logits [N, E] (through σ).
  void route_backward(Tensor dlogits, Tensor dnoise_logits, const Tensor& dgate,
                      const RoutePlanTensors& plan, const RouteState& state, const RouteInputs& in,
                      const RouteSpec& spec, double aux_scale, double z_scale);

  // ---- elementwise helpers ---------------------------------------------------------------
  void add(Tensor y, const Tensor& x);  // y += x
  void scale(Tensor x, double s);       // x *= s
  double sum_squares(const Tensor& x);  // Σ x², accumulated in double
  double sum(const Tensor& x);          // Σ x, accumulated in double

  // ---- optimizer -------------------------------------------------------------------------
  struct AdamArgs {
    double lr, beta1, beta2, eps, weight_decay;
    bool decoupled;     // AdamW (decay the weight) vs Adam (L2 term added to the gradient)
    int64_t step;       // 1-based, for bias correction
    double grad_scale;  // gradients are multiplied by this first (clipping, averaging)
  };
  // One Adam(W) step on flat param/grad/m/v of equal size.
  void adam_update(Tensor param, const Tensor& grad, Tensor m, Tensor v, const AdamArgs& a);

 protected:
  // Backends report their allocations here (peak_bytes()).
  void note_allocated(void* p, uint64_t bytes);
  void note_freed(void* p);

  // The backend's implementations: called only with arguments the front has checked.
  virtual void copy_impl(Tensor dst, const Tensor& src) = 0;
  virtual void to_host_impl(void* dst, const Tensor& src) = 0;
  virtual void from_host_impl(Tensor dst, const void* src) = 0;
  virtual void fill_impl(Tensor x, double value) = 0;
  virtual void gemm_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                         const Tensor& A, int64_t sa, const Tensor& B, int64_t sb, double beta,
                         Tensor C, int64_t sc, int64_t batch) = 0;
  virtual void embedding_forward_impl(Tensor out, const Tensor& ids, const Tensor& wte,
                                      const Tensor& wpe) = 0;
  virtual void embedding_backward_impl(Tensor dwte, Tensor dwpe, const Tensor& dout,
                                       const Tensor& ids) = 0;
  virtual void norm_forward_impl(NormKind kind, Tensor out, Tensor mean, Tensor rstd,
                                 const Tensor& x, const Tensor& w, const Tensor& b,
                                 double eps) = 0;
  virtual void norm_backward_impl(NormKind kind, Tensor dx, Tensor dw, Tensor db,
                                  const Tensor& dout, const Tensor& x, const Tensor& w,
                                  const Tensor& mean, const Tensor& rstd) = 0;
  virtual void activation_forward_impl(Activation act, Tensor out, const Tensor& x) = 0;
  virtual void activation_backward_impl(Activation act, Tensor dx, const Tensor& dout,
                                        const Tensor& x) = 0;
  virtual void glu_forward_impl(Activation act, Tensor h, const Tensor& ag) = 0;
  virtual void glu_backward_impl(Activation act, Tensor dag, const Tensor& dh,
                                 const Tensor& ag) = 0;
  virtual void softmax_forward_impl(Tensor out, const Tensor& x) = 0;
  virtual void softmax_backward_impl(Tensor dx, const Tensor& dout, const Tensor& out) = 0;
  virtual void attention_forward_impl(Tensor out, AttentionCache& cache, const Tensor& qkv,
                                      int64_t n_heads, bool causal) = 0;
  virtual void attention_decode_impl(Tensor out, const Tensor& qkv, Tensor k_cache, Tensor v_cache,
                                     Tensor scores, int64_t position, int64_t n_heads) = 0;
  virtual void attention_fused_forward_impl(Tensor out, Tensor lse, const Tensor& qkv,
                                            int64_t n_heads, bool causal) = 0;
  virtual void attention_fused_backward_impl(Tensor dqkv, Tensor delta, const Tensor& dout,
                                             const Tensor& qkv, const Tensor& out,
                                             const Tensor& lse, int64_t n_heads, bool causal) = 0;
  virtual void attention_backward_impl(Tensor dqkv, AttentionCache& cache, const Tensor& dout,
                                       int64_t n_heads, bool causal) = 0;
  virtual void cross_entropy_forward_impl(Tensor loss, Tensor nll, Tensor lse,
                                          const Tensor& logits, const Tensor& targets,
                                          double smoothing) = 0;
  virtual void cross_entropy_backward_impl(Tensor dlogits, const Tensor& logits,
                                           const Tensor& lse, const Tensor& targets,
                                           double smoothing, double scale) = 0;
  virtual void gather_rows_impl(Tensor out, const Tensor& x, const Tensor& rows,
                                const Tensor& w) = 0;
  virtual void combine_rows_impl(Tensor out, const Tensor& y, const Tensor& begin,
                                 const Tensor& slots, const Tensor& w) = 0;
  virtual void row_dots_impl(Tensor out, const Tensor& a, const Tensor& b,
                             const Tensor& rows) = 0;
  virtual void jitter_rows_impl(Tensor out, const Tensor& in, const JitterSpec& spec);
  virtual void route_plan_impl(const RoutePlanTensors& plan, const RouteState& state,
                               const RouteInputs& in, const RouteSpec& spec);
  virtual void route_backward_impl(Tensor dlogits, Tensor dnoise_logits, const Tensor& dgate,
                                   const RoutePlanTensors& plan, const RouteState& state,
                                   const RouteInputs& in, const RouteSpec& spec, double aux_scale,
                                   double z_scale);
  virtual void add_impl(Tensor y, const Tensor& x) = 0;
  virtual void scale_impl(Tensor x, double s) = 0;
  virtual double sum_impl(const Tensor& x, bool squares) = 0;
  virtual void adam_update_impl(Tensor param, const Tensor& grad, Tensor m, Tensor v,
                                const AdamArgs& a) = 0;

 private:
  bool bf16_operands_ = false;
  std::unordered_map<void*, uint64_t> allocations_;
  uint64_t in_use_ = 0, peak_ = 0;
  uint64_t host_reads_ = 0;
  // The dtype of a floating argument must be one this backend computes in.
  void check_floating(const Tensor& t, const char* what) const;
  void check_embedding(const Tensor& ids, const Tensor& table, const Tensor& rows,
                       const Tensor& positions, bool positions_optional, const char* names[3]);
};

// The backend for `device`: "cpu" always; "cuda" where built with CUDA and a GPU is
// present (else an Error with exit code 2 that says so).
std::unique_ptr<Ops> make_ops(Device device);
// The OpenBLAS kernel to force (OPENBLAS_CORETYPE) because the library did not
// recognise this processor and fell back to an older one than the processor
// runs (OpenBLAS 0.3.21 takes Emerald Rapids for a Prescott: sgemm 5× slower);
// empty when its own choice stands or the user set OPENBLAS_CORETYPE.
std::string cpu_blas_kernel_override();
Device parse_device(const std::string& name);  // "cpu" | "cuda"

}  // namespace sy
