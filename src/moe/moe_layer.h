#pragma once
// A Mixture-of-Experts FFN: route → dispatch → experts → combine, each its own object.
//   route:    the router picks (token, expert, gate) choices per group (RoutePlan; router.h)
//   dispatch: the chosen tokens' rows go to their experts, on this rank or over the
//             expert-parallel group (TokenDispatcher; dispatcher.h)
//   experts:  each expert's FFN on its rows (Experts; experts.h)
//   combine:  y_t = Σ gate · FFN_e(x_t) over t's choices; a token no expert took gets 0
// Backward mirrors it; the router's gradient arrives through the gates (and the
// auxiliary losses).
//
// Dimensions, the same letters in every file of src/moe (and in Ops::route_*):
//   N  rows of x (the micro-batch's tokens)       D  model width (d_model)
//   E  experts (local_E on this rank under ep)     H  an expert's hidden width
//   G  routing groups of S members each            C  capacity: slots per expert per group
//   k  choices per token (token choice)            R  rows an expert set processes
#include <memory>
#include <string>
#include <vector>

#include "model/layer.h"
#include "model/model_config.h"
#include "moe/dispatcher.h"
#include "moe/experts.h"
#include "moe/router.h"
#include "parallel/communicator.h"

namespace sy {

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
  const ExchangeStats& exchange() const { return dispatcher_.exchange(); }
  // Device → host reads inside this layer's forwards and backwards so far (with
  // moe.device_routing and a fixed capacity: none).
  uint64_t host_reads() const { return host_reads_; }

 private:
  LayerEnv env_;
  int layer_;
  int64_t D_;
  const MoeRuntime& runtime_;
  std::unique_ptr<Router> router_;
  Experts experts_;
  TokenDispatcher dispatcher_;
  RoutePlan plan_;
  int64_t max_slots_per_token_ = 0;
  int64_t max_seq_ = 0;  // bounds the by-position groups of a micro-batch
  uint64_t host_reads_ = 0;
  std::vector<double> dgate_;  // [slots] ∂L/∂gate, host (the router's backward reads it)
};

}  // namespace sy
