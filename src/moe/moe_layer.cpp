#include "moe/moe_layer.h"

#include <cmath>

#include "core/errors.h"

namespace sy {

MoeLayer::MoeLayer(LayerEnv env, const std::string& prefix, const ModelConfig& model,
                   const MoeConfig& cfg, int layer, const MoeRuntime& runtime)
    : env_(env),
      layer_(layer),
      C_(model.d_model),
      runtime_(runtime),
      router_(make_router(env, prefix, cfg, model.d_model, layer, model.arch)),
      experts_(env, prefix + ".experts", cfg.num_experts, model.d_model,
               cfg.expert_d_ff > 0 ? cfg.expert_d_ff : model.d_ff, cfg.expert_kind, model.init_std,
               model.init_std / std::sqrt(2.0 * model.n_layers)) {
  const int64_t per_token = cfg.router == RouterKind::switch_top1   ? 1
                            : cfg.router == RouterKind::gshard_top2 ? 2
                            : cfg.router == RouterKind::noisy_topk  ? cfg.top_k
                                                                    : cfg.num_experts;
  max_slots_ = per_token;  // × tokens, at allocate()
}

void MoeLayer::allocate(Arena& arena, int64_t N) {
  const DType t = env_.dtype;
  max_slots_ *= N;
  router_->allocate(arena, N);
  experts_.allocate(arena, max_slots_);
  slot_rows_ = arena.make(DType::i32, {max_slots_});
  slot_gates_ = arena.make(t, {max_slots_});
  token_begin_ = arena.make(DType::i32, {N + 1});
  token_slots_ = arena.make(DType::i32, {max_slots_});
  xin_ = arena.make(t, {max_slots_, C_});
  yexp_ = arena.make(t, {max_slots_, C_});
  dy_ = arena.make(t, {max_slots_, C_});
  dxin_ = arena.make(t, {max_slots_, C_});
  dgate_ = arena.make(t, {max_slots_});
  host_rows_.reserve(static_cast<size_t>(max_slots_));
  host_slots_.reserve(static_cast<size_t>(max_slots_));
  host_gates_.reserve(static_cast<size_t>(max_slots_));
  host_begin_.reserve(static_cast<size_t>(N + 1));
}

void MoeLayer::upload_plan(int64_t N) {
  const int64_t S = plan_.slots();
  SY_CHECK(S <= max_slots_, "{} slots exceed the {} allocated", S, max_slots_);
  host_rows_.assign(plan_.slot_token.begin(), plan_.slot_token.end());
  // Token-major index of slots (counting sort: slots of a token in slot order).
  host_begin_.assign(static_cast<size_t>(N + 1), 0);
  for (int32_t r : host_rows_) ++host_begin_[r + 1];
  for (int64_t t = 0; t < N; ++t) host_begin_[t + 1] += host_begin_[t];
  host_slots_.assign(static_cast<size_t>(S), 0);
  std::vector<int32_t> fill(host_begin_.begin(), host_begin_.end() - 1);
  for (int64_t s = 0; s < S; ++s) host_slots_[fill[host_rows_[s]]++] = static_cast<int32_t>(s);
  Ops& ops = env_.ops;
  ops.from_host(slot_rows_.view({S}), host_rows_.data());
  ops.from_host(token_begin_, host_begin_.data());
  ops.from_host(token_slots_.view({S}), host_slots_.data());
  if (env_.dtype == DType::f64) {
    ops.from_host(slot_gates_.view({S}), plan_.slot_gate.data());
  } else {
    std::vector<float> g(plan_.slot_gate.begin(), plan_.slot_gate.end());
    ops.from_host(slot_gates_.view({S}), g.data());
  }
}

void MoeLayer::forward(const Tensor& x, Tensor out) {
  x_ = x;
  const int64_t N = x.numel() / C_;
  router_->forward(x, runtime_.ctx, plan_);                        // route
  upload_plan(N);
  const int64_t S = plan_.slots();
  Ops& ops = env_.ops;
  const Tensor rows = slot_rows_.view({S});
  ops.gather_rows(xin_.view({S, C_}), x, rows, Tensor{});           // dispatch
  experts_.forward(xin_.view({S, C_}), plan_.expert_begin, yexp_.view({S, C_}));  // experts
  ops.combine_rows(out, yexp_.view({S, C_}), token_begin_, token_slots_.view({S}),
                   slot_gates_.view({S}));                          // combine
}

void MoeLayer::forward_reference(const Tensor& x, Tensor out) {
  const int64_t N = x.numel() / C_;
  router_->forward(x, runtime_.ctx, plan_);
  upload_plan(N);
  const int64_t S = plan_.slots();
  experts_.forward_reference(x, plan_.slot_token, plan_.expert_begin, yexp_.view({S, C_}));
  env_.ops.combine_rows(out, yexp_.view({S, C_}), token_begin_, token_slots_.view({S}),
                        slot_gates_.view({S}));
}

void MoeLayer::backward(const Tensor& dout, Tensor dx, BackwardScratch& s) {
  (void)s;
  const int64_t S = plan_.slots();
  Ops& ops = env_.ops;
  const Tensor rows = slot_rows_.view({S});
  // ∂L/∂gate of each slot = ⟨∂L/∂y_t, FFN_e(x_t)⟩; ∂L/∂FFN_e(x_t) = gate · ∂L/∂y_t.
  ops.row_dots(dgate_.view({S}), yexp_.view({S, C_}), dout, rows);
  ops.gather_rows(dy_.view({S, C_}), dout, rows, slot_gates_.view({S}));
  experts_.backward(dy_.view({S, C_}), dxin_.view({S, C_}));
  ops.fill(dx, 0.0);
  ops.combine_rows(dx, dxin_.view({S, C_}), token_begin_, token_slots_.view({S}), Tensor{});
  std::vector<double> dgate(static_cast<size_t>(S));
  if (env_.dtype == DType::f64) {
    ops.to_host(dgate.data(), dgate_.view({S}));
  } else {
    std::vector<float> f(static_cast<size_t>(S));
    ops.to_host(f.data(), dgate_.view({S}));
    std::copy(f.begin(), f.end(), dgate.begin());
  }
  router_->backward(dgate, runtime_.aux_grad_scale, dx);
}

}  // namespace sy
