#include "moe/moe_layer.h"

#include <cmath>

#include "core/errors.h"
#include "core/phases.h"
#include "core/timer.h"
#include "moe/router_table.h"

namespace sy {

MoeLayer::MoeLayer(LayerEnv env, const std::string& prefix, const ModelConfig& model,
                   const MoeConfig& cfg, int layer, const MoeRuntime& runtime, ExpertShard shard)
    : env_(env),
      layer_(layer),
      C_(model.d_model),
      runtime_(runtime),
      router_(make_router(env, prefix, cfg, model.d_model, layer, model.arch)),
      experts_(env, prefix + ".experts", shard.rank * (cfg.num_experts / shard.size),
               cfg.num_experts / shard.size, model.d_model,
               cfg.expert_d_ff > 0 ? cfg.expert_d_ff : model.d_ff, cfg.expert_kind, model.activation,
               model.init_std,
               model.init_std / std::sqrt(2.0 * model.n_layers)),
      shard_(shard),
      E_(cfg.num_experts),
      local_E_(cfg.num_experts / shard.size) {
  SY_CHECK(cfg.num_experts % shard.size == 0, "{} experts over {} ranks", cfg.num_experts, shard.size);
  max_slots_ = router_info(cfg.router).max_slots_per_token(cfg);  // × tokens, at allocate()
}

void MoeLayer::allocate(Arena& arena, int64_t N) {
  const DType t = env_.dtype;
  max_slots_ *= N;
  router_->allocate(arena, N);
  experts_.allocate(arena, shard_.size * max_slots_);  // rows from every rank of the group
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
  if (shard_.size > 1) {
    const int64_t rows = shard_.size * max_slots_;
    recv_ = arena.make(t, {rows, C_});
    local_in_ = arena.make(t, {rows, C_});  // kept until backward (the experts read it)
    local_dy_ = arena.make(t, {rows, C_});
    local_out_ = arena.make(t, {rows, C_});
    back_ = arena.make(t, {rows, C_});
    to_local_ = arena.make(DType::i32, {rows});
    to_source_ = arena.make(DType::i32, {rows});
  }
}

void MoeLayer::exchange(const Tensor& send, const std::vector<int64_t>& send_rows, Tensor recv,
                        const std::vector<int64_t>& recv_rows) {
  PhaseScope phase(Phase::communication);
  Timer t;
  shard_.comm->all_to_all_v(send, send_rows, recv, recv_rows, C_);
  int64_t sent = 0, received = 0;
  for (size_t j = 0; j < send_rows.size(); ++j)
    if (static_cast<int>(j) != shard_.rank) sent += send_rows[j], received += recv_rows[j];
  const int64_t width = static_cast<int64_t>(dtype_size(send.dtype)) * C_;
  exchange_.bytes_sent += sent * width;
  exchange_.bytes_received += received * width;
  exchange_.seconds += t.seconds();
}

// Who sends how many rows to whom, and the permutation that turns the received
// rows (by source, then expert) into expert-major order for the local GEMMs.
void MoeLayer::plan_exchange() {
  const int G = shard_.size;
  std::vector<int64_t> send_counts(static_cast<size_t>(E_)), recv_counts;
  for (int64_t e = 0; e < E_; ++e) send_counts[e] = plan_.expert_begin[e + 1] - plan_.expert_begin[e];
  {
    PhaseScope phase(Phase::communication);
    shard_.comm->all_to_all(send_counts, recv_counts);  // [source × local expert]
  }
  send_rows_.assign(G, 0);
  recv_rows_.assign(G, 0);
  for (int j = 0; j < G; ++j)
    for (int64_t i = 0; i < local_E_; ++i) {
      send_rows_[j] += send_counts[j * local_E_ + i];
      recv_rows_[j] += recv_counts[j * local_E_ + i];
    }
  // Offsets of (source j, local expert i) blocks in the received buffer.
  std::vector<int64_t> src_offset(static_cast<size_t>(G * local_E_));
  int64_t o = 0;
  for (int j = 0; j < G; ++j)
    for (int64_t i = 0; i < local_E_; ++i) src_offset[j * local_E_ + i] = o, o += recv_counts[j * local_E_ + i];
  host_to_local_.clear();
  host_to_source_.assign(static_cast<size_t>(o), 0);
  local_begin_.assign(static_cast<size_t>(local_E_ + 1), 0);
  for (int64_t i = 0; i < local_E_; ++i) {
    local_begin_[i] = static_cast<int64_t>(host_to_local_.size());
    for (int j = 0; j < G; ++j)
      for (int64_t k = 0; k < recv_counts[j * local_E_ + i]; ++k) {
        const int64_t src_row = src_offset[j * local_E_ + i] + k;
        host_to_source_[src_row] = static_cast<int32_t>(host_to_local_.size());
        host_to_local_.push_back(static_cast<int32_t>(src_row));
      }
  }
  local_begin_[local_E_] = o;
  exchange_.rows_received = o;
  if (o > 0) {
    env_.ops.from_host(to_local_.view({o}), host_to_local_.data());
    env_.ops.from_host(to_source_.view({o}), host_to_source_.data());
  }
}

void MoeLayer::experts_forward(int64_t S) {
  if (shard_.size == 1) {
    experts_.forward(xin_.view({S, C_}), plan_.expert_begin, yexp_.view({S, C_}));
    return;
  }
  Ops& ops = env_.ops;
  plan_exchange();
  const int64_t R = local_begin_[local_E_];
  exchange(xin_, send_rows_, recv_, recv_rows_);
  ops.gather_rows(local_in_.view({R, C_}), recv_.view({R, C_}), to_local_.view({R}), Tensor{});
  experts_.forward(local_in_.view({R, C_}), local_begin_, local_out_.view({R, C_}));
  ops.gather_rows(back_.view({R, C_}), local_out_.view({R, C_}), to_source_.view({R}), Tensor{});
  exchange(back_, recv_rows_, yexp_, send_rows_);
}

void MoeLayer::experts_backward(int64_t S) {
  if (shard_.size == 1) {
    experts_.backward(dy_.view({S, C_}), dxin_.view({S, C_}));
    return;
  }
  Ops& ops = env_.ops;
  const int64_t R = local_begin_[local_E_];
  exchange(dy_, send_rows_, recv_, recv_rows_);
  ops.gather_rows(local_dy_.view({R, C_}), recv_.view({R, C_}), to_local_.view({R}), Tensor{});
  experts_.backward(local_dy_.view({R, C_}), local_out_.view({R, C_}));
  ops.gather_rows(back_.view({R, C_}), local_out_.view({R, C_}), to_source_.view({R}), Tensor{});
  exchange(back_, recv_rows_, dxin_, send_rows_);
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
  Ops& ops = env_.ops;
  int64_t S = 0;
  {
    PhaseScope phase(Phase::routing);
    router_->forward(x, runtime_.ctx, plan_);                      // route
    upload_plan(N);
    S = plan_.slots();
    exchange_ = ExchangeStats{};
    ops.gather_rows(xin_.view({S, C_}), x, slot_rows_.view({S}), Tensor{});  // dispatch
  }
  experts_forward(S);                                               // experts (on their ranks)
  PhaseScope phase(Phase::routing);
  ops.combine_rows(out, yexp_.view({S, C_}), token_begin_, token_slots_.view({S}),
                   slot_gates_.view({S}));                          // combine
}

void MoeLayer::forward_reference(const Tensor& x, Tensor out) {
  SY_CHECK(shard_.size == 1, "the reference path holds every expert");
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
  {
    PhaseScope phase(Phase::routing);
    // ∂L/∂gate of each slot = ⟨∂L/∂y_t, FFN_e(x_t)⟩; ∂L/∂FFN_e(x_t) = gate · ∂L/∂y_t.
    ops.row_dots(dgate_.view({S}), yexp_.view({S, C_}), dout, rows);
    ops.gather_rows(dy_.view({S, C_}), dout, rows, slot_gates_.view({S}));
  }
  experts_backward(S);
  PhaseScope phase(Phase::routing);
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
