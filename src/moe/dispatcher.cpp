#include "moe/dispatcher.h"

#include <algorithm>

#include "core/errors.h"
#include "core/phases.h"
#include "core/timer.h"

namespace sy {

TokenDispatcher::TokenDispatcher(LayerEnv env, int64_t width, int64_t experts, ExpertShard shard)
    : env_(env), D_(width), E_(experts), local_E_(experts / shard.size), shard_(shard) {
  SY_CHECK(experts % shard.size == 0, "{} experts over {} ranks", experts, shard.size);
}

void TokenDispatcher::allocate(Arena& arena, int64_t N, int64_t max_slots) {
  const DType t = env_.dtype;
  slot_rows_ = arena.make(DType::i32, {max_slots});
  slot_gates_ = arena.make(t, {max_slots});
  token_begin_ = arena.make(DType::i32, {N + 1});
  token_slots_ = arena.make(DType::i32, {max_slots});
  xin_ = arena.make(t, {max_slots, D_});
  yexp_ = arena.make(t, {max_slots, D_});
  dy_ = arena.make(t, {max_slots, D_});
  dxin_ = arena.make(t, {max_slots, D_});
  dgate_ = arena.make(t, {max_slots});
  host_rows_.reserve(static_cast<size_t>(max_slots));
  host_slots_.reserve(static_cast<size_t>(max_slots));
  host_begin_.reserve(static_cast<size_t>(N + 1));
  if (shard_.size > 1) {
    const int64_t rows = max_expert_rows(max_slots);
    recv_ = arena.make(t, {rows, D_});
    local_in_ = arena.make(t, {rows, D_});  // kept until backward (the experts read it)
    local_dy_ = arena.make(t, {rows, D_});
    local_out_ = arena.make(t, {rows, D_});  // the experts' output, then their input gradient
    back_ = arena.make(t, {rows, D_});
    to_local_ = arena.make(DType::i32, {rows});
    to_source_ = arena.make(DType::i32, {rows});
    expert_in_ = local_in_, expert_out_ = local_out_, expert_dy_ = local_dy_, expert_dx_ = local_out_;
  } else {
    expert_in_ = xin_, expert_out_ = yexp_, expert_dy_ = dy_, expert_dx_ = dxin_;
  }
}

void TokenDispatcher::upload(const RoutePlan& plan, int64_t N) {
  const int64_t S = plan.slots();
  SY_CHECK(S <= slot_rows_.numel(), "{} slots exceed the {} allocated", S, slot_rows_.numel());
  slots_ = S;
  host_rows_.assign(plan.slot_token.begin(), plan.slot_token.end());
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
    ops.from_host(slot_gates_.view({S}), plan.slot_gate.data());
  } else {
    std::vector<float> g(plan.slot_gate.begin(), plan.slot_gate.end());
    ops.from_host(slot_gates_.view({S}), g.data());
  }
}

void TokenDispatcher::dispatch(const Tensor& x, const RoutePlan& plan) {
  Ops& ops = env_.ops;
  {
    PhaseScope phase(Phase::routing);
    backend_plan_ = plan.on_backend;
    if (backend_plan_) slots_ = plan.slots();
    else upload(plan, x.numel() / D_);
    exchange_ = ExchangeStats{};
    ops.gather_rows(xin_.view({slots_, D_}), x, slot_rows_.view({slots_}), Tensor{});
  }
  if (shard_.size == 1) {
    rows_ = slots_;
    expert_begin_ = &plan.expert_begin;
    return;
  }
  plan_exchange(plan);
  rows_ = local_begin_[local_E_];
  expert_begin_ = &local_begin_;
  exchange(xin_, send_rows_, recv_, recv_rows_);
  ops.gather_rows(local_in_.view({rows_, D_}), recv_.view({rows_, D_}), to_local_.view({rows_}), Tensor{});
}

void TokenDispatcher::combine(Tensor out) {
  Ops& ops = env_.ops;
  if (shard_.size > 1) {  // the experts' rows back to the ranks whose tokens they are
    ops.gather_rows(back_.view({rows_, D_}), local_out_.view({rows_, D_}), to_source_.view({rows_}), Tensor{});
    exchange(back_, recv_rows_, yexp_, send_rows_);
  }
  combine_slots(out);
}

void TokenDispatcher::combine_slots(Tensor out) {
  PhaseScope phase(Phase::routing);
  env_.ops.combine_rows(out, yexp_.view({slots_, D_}), token_begin_, token_slots_.view({slots_}),
                        slot_gates_.view({slots_}));
}

void TokenDispatcher::dispatch_grad(const Tensor& dout, std::vector<double>& dgate) {
  Ops& ops = env_.ops;
  const int64_t S = slots_;
  const Tensor rows = slot_rows_.view({S});
  {
    PhaseScope phase(Phase::routing);
    // ∂L/∂gate of each slot = ⟨∂L/∂y_t, FFN_e(x_t)⟩; ∂L/∂FFN_e(x_t) = gate · ∂L/∂y_t.
    ops.row_dots(dgate_.view({S}), yexp_.view({S, D_}), dout, rows);
    ops.gather_rows(dy_.view({S, D_}), dout, rows, slot_gates_.view({S}));
    dgate.resize(backend_plan_ ? 0 : static_cast<size_t>(S));  // a backend plan's stay there
    if (!backend_plan_) copy_to_host(dgate);
  }
  if (shard_.size == 1) return;
  exchange(dy_, send_rows_, recv_, recv_rows_);
  ops.gather_rows(local_dy_.view({rows_, D_}), recv_.view({rows_, D_}), to_local_.view({rows_}), Tensor{});
}

void TokenDispatcher::copy_to_host(std::vector<double>& dgate) {
  const Tensor g = dgate_.view({slots_});
  if (env_.dtype == DType::f64) {
    env_.ops.to_host(dgate.data(), g);
  } else {
    std::vector<float> f(static_cast<size_t>(slots_));
    env_.ops.to_host(f.data(), g);
    std::copy(f.begin(), f.end(), dgate.begin());
  }
}

void TokenDispatcher::combine_grad(Tensor dx) {
  Ops& ops = env_.ops;
  if (shard_.size > 1) {
    ops.gather_rows(back_.view({rows_, D_}), local_out_.view({rows_, D_}), to_source_.view({rows_}), Tensor{});
    exchange(back_, recv_rows_, dxin_, send_rows_);
  }
  PhaseScope phase(Phase::routing);
  ops.fill(dx, 0.0);
  ops.combine_rows(dx, dxin_.view({slots_, D_}), token_begin_, token_slots_.view({slots_}), Tensor{});
}

void TokenDispatcher::exchange(const Tensor& send, const std::vector<int64_t>& send_rows, Tensor recv,
                               const std::vector<int64_t>& recv_rows) {
  PhaseScope phase(Phase::communication);
  Timer t;
  shard_.comm->all_to_all_v(send, send_rows, recv, recv_rows, D_);
  int64_t sent = 0, received = 0;
  for (size_t j = 0; j < send_rows.size(); ++j)
    if (static_cast<int>(j) != shard_.rank) sent += send_rows[j], received += recv_rows[j];
  const int64_t width = static_cast<int64_t>(dtype_size(send.dtype)) * D_;
  exchange_.bytes_sent += sent * width;
  exchange_.bytes_received += received * width;
  exchange_.seconds += t.seconds();
}

// Who sends how many rows to whom, and the permutation that turns the received
// rows (by source, then expert) into expert-major order for the local GEMMs.
void TokenDispatcher::plan_exchange(const RoutePlan& plan) {
  const int G = shard_.size;
  std::vector<int64_t> send_counts(static_cast<size_t>(E_)), recv_counts;
  for (int64_t e = 0; e < E_; ++e) send_counts[e] = plan.expert_begin[e + 1] - plan.expert_begin[e];
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

}  // namespace sy
