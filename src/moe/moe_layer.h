#pragma once
// A Mixture-of-Experts FFN: route → dispatch → experts → combine.
//   route:    the router picks (token, expert, gate) choices per group (RoutePlan)
//   dispatch: the chosen tokens' rows are gathered expert after expert
//   experts:  each expert's FFN on its rows
//   combine:  y_t = Σ gate · FFN_e(x_t) over t's choices; a token no expert took gets 0
// Backward mirrors it; the router's gradient arrives through the gates (and the
// auxiliary losses).
#include <memory>
#include <string>
#include <vector>

#include "model/layer.h"
#include "model/model_config.h"
#include "moe/experts.h"
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

// What a model's MoE layers share: the routing context of the current step, and
// the weight of the auxiliary losses in the objective's gradient.
struct MoeRuntime {
  RouteContext ctx;
  double aux_grad_scale = 1.0;
};

class MoeLayer final : public FeedForward {
 public:
  MoeLayer(LayerEnv env, const std::string& prefix, const ModelConfig& model, const MoeConfig& cfg,
           int layer, const MoeRuntime& runtime, ExpertShard shard = {});
  void allocate(Arena& arena, int64_t n_tokens) override;
  void forward(const Tensor& x, Tensor out) override;
  void backward(const Tensor& dout, Tensor dx, BackwardScratch& s) override;

  // The same forward through Experts::forward_reference (tests).
  void forward_reference(const Tensor& x, Tensor out);

  Router& router() { return *router_; }
  const Router& router() const { return *router_; }
  const RouterStats& stats() const { return router_->stats(); }
  const RoutePlan& plan() const { return plan_; }
  double aux_loss() const { return router_->stats().aux_weighted; }
  int64_t params_per_expert() const { return experts_.params_per_expert(); }
  int layer() const { return layer_; }
  const ExchangeStats& exchange() const { return exchange_; }

 private:
  void upload_plan(int64_t n_tokens);
  // Expert parallelism: rows for the experts → their owners, and results back.
  void experts_forward(int64_t S);
  void experts_backward(int64_t S);
  void plan_exchange();
  void exchange(const Tensor& send, const std::vector<int64_t>& send_rows, Tensor recv,
                const std::vector<int64_t>& recv_rows);
  LayerEnv env_;
  int layer_;
  int64_t C_;
  const MoeRuntime& runtime_;
  std::unique_ptr<Router> router_;
  Experts experts_;
  RoutePlan plan_;
  int64_t max_slots_ = 0;
  Tensor x_;
  // The plan on the device: slot rows and gates, and the token-major index of slots.
  Tensor slot_rows_, slot_gates_, token_begin_, token_slots_;  // i32 / dtype / i32 / i32
  Tensor xin_, yexp_, dy_, dxin_, dgate_;  // [max_slots, C] ×4, [max_slots]
  std::vector<int32_t> host_rows_, host_begin_, host_slots_;
  std::vector<double> host_gates_;
  // Expert parallelism.
  ExpertShard shard_;
  int64_t E_, local_E_;
  std::vector<int64_t> send_rows_, recv_rows_;  // [group size]
  std::vector<int64_t> local_begin_;            // [local_E + 1] after reordering
  Tensor recv_, local_in_, local_dy_, local_out_, back_;  // [group size × max_slots, C]
  Tensor to_local_, to_source_;                 // i32 permutations
  std::vector<int32_t> host_to_local_, host_to_source_;
  ExchangeStats exchange_;
};

}  // namespace sy
