#include "moe/experts.h"

#include <algorithm>

#include "core/errors.h"
#include "core/phases.h"

namespace sy {

Experts::Experts(LayerEnv env, const std::string& prefix, int64_t first, int64_t count,
                 int64_t d_model, int64_t d_ff, ExpertKind kind, Activation act, double init_std,
                 double out_std)
    : env_(env), E_(count), D_(d_model), H_(d_ff), act_(kind == ExpertKind::glu ? act : Activation::gelu),
      kind_(kind) {
  for (int64_t e = 0; e < E_; ++e) {
    const std::string p = prefix + "." + std::to_string(first + e);
    Ids ids;
    constexpr bool kDecay = true, kExpert = true;
    ids.w_in = env.params.add(p + ".w_in", {H_, D_}, Init::normal, init_std, kDecay, kExpert);
    if (kind == ExpertKind::glu)
      ids.w_gate = env.params.add(p + ".w_gate", {H_, D_}, Init::normal, init_std, kDecay, kExpert);
    ids.w_out = env.params.add(p + ".w_out", {D_, H_}, Init::normal, out_std, kDecay, kExpert);
    ids_.push_back(ids);
  }
}

int64_t Experts::uniform_rows(const std::vector<int64_t>& expert_begin) const {
  if (E_ < 2) return 0;
  if (weight_stride_ == 0) {  // offsets are known once the store has laid them out
    const ParamStore& P = env_.params;
    const int64_t stride = P.spec(ids_[1].w_in).offset - P.spec(ids_[0].w_in).offset;
    bool same = stride > 0;
    // glu: w_gate must follow w_in directly (one [2H, D] operand), in every expert.
    for (int64_t e = 0; e < E_ && same && kind_ == ExpertKind::glu; ++e)
      same = P.spec(ids_[e].w_gate).offset == P.spec(ids_[e].w_in).offset + H_ * D_;
    for (int64_t e = 1; e < E_ && same; ++e)
      for (ParamId Ids::*w : {&Ids::w_in, &Ids::w_out})
        same = same && P.spec(ids_[e].*w).offset - P.spec(ids_[e - 1].*w).offset == stride;
    weight_stride_ = same ? stride : -1;
  }
  if (weight_stride_ < 0) return 0;
  const int64_t n = expert_begin[1] - expert_begin[0];
  for (int64_t e = 1; e < E_; ++e)
    if (expert_begin[e + 1] - expert_begin[e] != n) return 0;
  return n;
}

Tensor Experts::batch_span(const Tensor& flat, ParamId id, int64_t numel) const {
  return flat.view({(E_ - 1) * weight_stride_ + numel}, env_.params.spec(id).offset);
}

// Every expert on n rows at once: per weight, one strided-batched product over the
// experts (member e reads rows [e·n, (e+1)·n) and expert e's weight).
void Experts::forward_batched(const Tensor& xin, int64_t n, Tensor yout) {
  Ops& ops = env_.ops;
  const ParamStore& P = env_.params;
  const int64_t width = a_.dim(1), S = E_ * n, ws = weight_stride_;
  // a = x · w_inᵀ ([w_in; w_gate] for glu: the two are adjacent)
  ops.gemm_strided_batched(false, true, n, width, D_, 1.0, xin, n * D_, batch_span(P.values(), ids_[0].w_in, width * D_),
                           ws, 0.0, a_, n * width, E_);
  if (kind_ == ExpertKind::glu) ops.glu_forward(act_, rows(hid_, 0, S, H_), rows(a_, 0, S, width));
  else ops.activation_forward(act_, rows(hid_, 0, S, H_), rows(a_, 0, S, width));
  ops.gemm_strided_batched(false, true, n, D_, H_, 1.0, hid_, n * H_, batch_span(P.values(), ids_[0].w_out, D_ * H_), ws,
                           0.0, yout, n * D_, E_);
}

void Experts::backward_batched(const Tensor& dy, int64_t n, Tensor dxin) {
  Ops& ops = env_.ops;
  ParamStore& P = env_.params;
  const int64_t width = a_.dim(1), S = E_ * n, ws = weight_stride_;
  ops.gemm_strided_batched(true, false, D_, H_, n, 1.0, dy, n * D_, hid_, n * H_, 1.0,
                           batch_span(P.grads(), ids_[0].w_out, D_ * H_), ws, E_);
  ops.gemm_strided_batched(false, false, n, H_, D_, 1.0, dy, n * D_, batch_span(P.values(), ids_[0].w_out, D_ * H_), ws,
                           0.0, dhid_, n * H_, E_);
  if (kind_ == ExpertKind::glu) ops.glu_backward(act_, rows(da_, 0, S, width), rows(dhid_, 0, S, H_), rows(a_, 0, S, width));
  else ops.activation_backward(act_, rows(da_, 0, S, width), rows(dhid_, 0, S, H_), rows(a_, 0, S, width));
  ops.gemm_strided_batched(true, false, width, D_, n, 1.0, da_, n * width, xin_, n * D_, 1.0,
                           batch_span(P.grads(), ids_[0].w_in, width * D_), ws, E_);
  ops.gemm_strided_batched(false, false, n, D_, width, 1.0, da_, n * width, batch_span(P.values(), ids_[0].w_in, width * D_),
                           ws, 0.0, dxin, n * D_, E_);
}

int64_t Experts::params_per_expert() const { return (kind_ == ExpertKind::glu ? 3 : 2) * D_ * H_; }

void Experts::allocate(Arena& arena, int64_t max_slots) {
  const int64_t width = kind_ == ExpertKind::glu ? 2 * H_ : H_;
  a_ = arena.make(env_.dtype, {max_slots, width});
  da_ = arena.make(env_.dtype, {max_slots, width});
  hid_ = arena.make(env_.dtype, {max_slots, H_});
  dhid_ = arena.make(env_.dtype, {max_slots, H_});
}

Tensor Experts::rows(const Tensor& t, int64_t begin, int64_t n, int64_t width) const {
  return t.view({n, width}, begin * width);
}

// One expert on n rows: x [n, D] → y [n, D], with a [n, width], hid [n, H] kept.
void Experts::expert_forward(int64_t e, const Tensor& x, Tensor a, Tensor hid, Tensor y) {
  Ops& ops = env_.ops;
  const ParamStore& P = env_.params;
  const int64_t n = x.dim(0);
  if (kind_ == ExpertKind::glu) {
    ops.gemm(false, true, n, 2 * H_, D_, 1.0, x, P.value_span(ids_[e].w_in, ids_[e].w_gate, {2 * H_, D_}), 0.0, a);
    ops.glu_forward(act_, hid, a);
  } else {
    ops.gemm(false, true, n, H_, D_, 1.0, x, P.value(ids_[e].w_in), 0.0, a);
    ops.activation_forward(act_, hid, a);
  }
  ops.gemm(false, true, n, D_, H_, 1.0, hid, P.value(ids_[e].w_out), 0.0, y);
}

void Experts::forward(const Tensor& xin, const std::vector<int64_t>& expert_begin, Tensor yout) {
  PhaseScope phase(Phase::expert_gemm);
  xin_ = xin;
  begin_ = expert_begin;
  if (const int64_t n = uniform_rows(expert_begin)) return forward_batched(xin, n, yout);
  const int64_t width = a_.dim(1);
  for (int64_t e = 0; e < E_; ++e) {
    const int64_t b = expert_begin[e], n = expert_begin[e + 1] - b;
    if (n == 0) continue;  // an expert with no tokens does nothing
    expert_forward(e, rows(xin, b, n, D_), rows(a_, b, n, width), rows(hid_, b, n, H_),
                   rows(yout, b, n, D_));
  }
}

void Experts::backward(const Tensor& dy, Tensor dxin) {
  PhaseScope phase(Phase::expert_gemm);
  Ops& ops = env_.ops;
  ParamStore& P = env_.params;
  if (const int64_t n = uniform_rows(begin_)) return backward_batched(dy, n, dxin);
  const int64_t width = a_.dim(1);
  for (int64_t e = 0; e < E_; ++e) {
    const int64_t b = begin_[e], n = begin_[e + 1] - b;
    if (n == 0) continue;
    const Tensor dye = rows(dy, b, n, D_), xe = rows(xin_, b, n, D_);
    const Tensor ae = rows(a_, b, n, width), he = rows(hid_, b, n, H_);
    Tensor dhe = rows(dhid_, b, n, H_), dae = rows(da_, b, n, width), dxe = rows(dxin, b, n, D_);
    ops.gemm(true, false, D_, H_, n, 1.0, dye, he, 1.0, P.grad(ids_[e].w_out));
    ops.gemm(false, false, n, H_, D_, 1.0, dye, P.value(ids_[e].w_out), 0.0, dhe);
    if (kind_ == ExpertKind::glu) {
      ops.glu_backward(act_, dae, dhe, ae);
      const Tensor w = P.value_span(ids_[e].w_in, ids_[e].w_gate, {2 * H_, D_});
      ops.gemm(true, false, 2 * H_, D_, n, 1.0, dae, xe, 1.0, P.grad_span(ids_[e].w_in, ids_[e].w_gate, {2 * H_, D_}));
      ops.gemm(false, false, n, D_, 2 * H_, 1.0, dae, w, 0.0, dxe);
    } else {
      ops.activation_backward(act_, dae, dhe, ae);
      ops.gemm(true, false, H_, D_, n, 1.0, dae, xe, 1.0, P.grad(ids_[e].w_in));
      ops.gemm(false, false, n, D_, H_, 1.0, dae, P.value(ids_[e].w_in), 0.0, dxe);
    }
  }
}

void Experts::forward_reference(const Tensor& x, const std::vector<int32_t>& slot_token,
                                const std::vector<int64_t>& expert_begin, Tensor yout) {
  // Per expert: gather its tokens into buffers of its own, run the FFN, write back.
  Ops& ops = env_.ops;
  Arena scratch(ops);
  const size_t w = dtype_size(x.dtype);
  std::vector<char> host_x(x.bytes()), host_y(yout.bytes());
  ops.to_host(host_x.data(), x);
  const int64_t width = kind_ == ExpertKind::glu ? 2 * H_ : H_;
  for (int64_t e = 0; e < E_; ++e) {
    const int64_t b = expert_begin[e], n = expert_begin[e + 1] - b;
    if (n == 0) continue;
    std::vector<char> in(static_cast<size_t>(n * D_) * w), out(in.size());
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(host_x.data() + slot_token[b + i] * D_ * w, D_ * w, in.data() + i * D_ * w);
    Tensor xe = scratch.make(x.dtype, {n, D_}), ye = scratch.make(x.dtype, {n, D_});
    ops.from_host(xe, in.data());
    expert_forward(e, xe, scratch.make(x.dtype, {n, width}), scratch.make(x.dtype, {n, H_}), ye);
    ops.to_host(out.data(), ye);
    std::copy(out.begin(), out.end(), host_y.data() + b * D_ * w);
  }
  ops.from_host(yout, host_y.data());
}

}  // namespace sy
