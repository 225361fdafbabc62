#pragma once
// The token dispatcher of a MoE layer: moves the rows a RoutePlan assigns to the
// experts that process them, and their results back. Local when this rank holds
// every expert; over the expert-parallel group otherwise (all-to-all out, the
// experts on their owners, all-to-all back). The combine sums each token's slots in
// slot order, so the result does not depend on the layout. The layer calls
//   dispatch(x, plan) → experts on expert_input() / expert_begin() → combine(out)
// and backward
//   dispatch_grad(dout, dgate) → experts on expert_output_grad() → combine_grad(dx).
#include <cstdint>
#include <vector>

#include "model/layer.h"
#include "moe/router.h"
#include "parallel/communicator.h"

namespace sy {

// This rank's share of the experts: the expert-parallel group it belongs to (null
// or size 1: every expert is local). Expert e lives on group rank e / (E / size).
struct ExpertShard {
  Communicator* comm = nullptr;
  int rank = 0, size = 1;
};

// Communication of one layer's last forward + backward.
struct ExchangeStats {
  int64_t bytes_sent = 0, bytes_received = 0;
  int64_t rows_received = 0;  // token rows my experts processed (forward)
  double seconds = 0;
};

class TokenDispatcher {
 public:
  // width: the model width D; experts: E over the whole group.
  TokenDispatcher(LayerEnv env, int64_t width, int64_t experts, ExpertShard shard);
  // n_tokens rows of x per forward, at most max_slots slots.
  void allocate(Arena& arena, int64_t n_tokens, int64_t max_slots);
  // The rows (and their count) this rank's experts may receive at most.
  int64_t max_expert_rows(int64_t max_slots) const { return shard_.size * max_slots; }

  // ---- forward ----
  // The plan to the device (a host plan; a backend plan is already there), then
  // x's chosen rows to their experts.
  void dispatch(const Tensor& x, const RoutePlan& plan);
  // The buffers a router routing on the backend writes its plan into.
  RoutePlanTensors plan_buffers() const { return {slot_rows_, slot_gates_, token_begin_, token_slots_}; }
  Tensor expert_input() const { return expert_in_.view({rows_, D_}); }   // [R, D] expert-major
  const std::vector<int64_t>& expert_begin() const { return *expert_begin_; }  // [local E + 1]
  Tensor expert_output() const { return expert_out_.view({rows_, D_}); }  // [R, D] the experts write
  // out [N, D] += Σ over each token's slots (in slot order) of gate · expert output.
  void combine(Tensor out);

  // ---- backward ----
  // dgate[slot] = ⟨∂L/∂y_t, FFN_e(x_t)⟩ (gate_grad(); copied into `dgate` for a host
  // plan); the experts' output gradients gate · ∂L/∂y_t to their experts
  // (expert_output_grad()).
  void dispatch_grad(const Tensor& dout, std::vector<double>& dgate);
  Tensor gate_grad() const { return dgate_.view({slots_}); }  // [S]
  Tensor expert_output_grad() const { return expert_dy_.view({rows_, D_}); }  // [R, D]
  Tensor expert_input_grad() const { return expert_dx_.view({rows_, D_}); }   // [R, D] the experts write
  // dx [N, D] = Σ over each token's slots of the experts' input gradients.
  void combine_grad(Tensor dx);

  // The reference path (every expert here): the plan on the device only, and the
  // slot-ordered output buffer and combine the per-expert loop uses.
  void upload(const RoutePlan& plan, int64_t n_tokens);
  Tensor slot_output() const { return yexp_.view({slots_, D_}); }  // [S, D]
  void combine_slots(Tensor out);

  const ExchangeStats& exchange() const { return exchange_; }

 private:
  void plan_exchange(const RoutePlan& plan);
  void copy_to_host(std::vector<double>& dgate);  // dgate_ of the last plan
  void exchange(const Tensor& send, const std::vector<int64_t>& send_rows, Tensor recv,
                const std::vector<int64_t>& recv_rows);

  LayerEnv env_;
  int64_t D_, E_, local_E_;
  ExpertShard shard_;
  int64_t slots_ = 0;  // S: this rank's slots of the last plan
  bool backend_plan_ = false;  // the last plan was written on the backend
  int64_t rows_ = 0;   // R: rows this rank's experts process
  // The plan on the device: slot rows and gates, and the token-major index of slots.
  Tensor slot_rows_, slot_gates_, token_begin_, token_slots_;  // i32 / dtype / i32 / i32
  Tensor xin_, yexp_, dy_, dxin_, dgate_;  // [max_slots, D] ×4 (slot order), [max_slots]
  std::vector<int32_t> host_rows_, host_begin_, host_slots_;
  // What the experts read and write: the slot buffers when local, else the
  // reordered rows received from the group.
  Tensor expert_in_, expert_out_, expert_dy_, expert_dx_;
  const std::vector<int64_t>* expert_begin_ = nullptr;
  // Expert parallelism.
  std::vector<int64_t> send_rows_, recv_rows_;  // [group size]
  std::vector<int64_t> local_begin_;            // [local_E + 1] after reordering
  Tensor recv_, local_in_, local_dy_, local_out_, back_;  // [group size × max_slots, D]
  Tensor to_local_, to_source_;                 // i32 permutations
  std::vector<int32_t> host_to_local_, host_to_source_;
  ExchangeStats exchange_;
};

}  // namespace sy
