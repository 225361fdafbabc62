#include "moe/moe_layer.h"

#include <algorithm>
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
      D_(model.d_model),
      runtime_(runtime),
      router_(make_router(env, prefix, cfg, model.d_model, layer, model.arch)),
      experts_(env, prefix + ".experts", shard.rank * (cfg.num_experts / shard.size),
               cfg.num_experts / shard.size, model.d_model,
               cfg.expert_d_ff > 0 ? cfg.expert_d_ff : model.d_ff, cfg.expert_kind, model.activation,
               model.init_std,
               model.init_std / std::sqrt(2.0 * model.n_layers)),
      dispatcher_(env, model.d_model, cfg.num_experts, shard),
      max_slots_per_token_(router_info(cfg.router).max_slots_per_token(cfg)),
      max_seq_(model.max_seq) {}

void MoeLayer::allocate(Arena& arena, int64_t N) {
  const int64_t max_slots = std::max(max_slots_per_token_ * N, router_->backend_slots(N, max_seq_));
  router_->allocate(arena, N, max_seq_);
  experts_.allocate(arena, dispatcher_.max_expert_rows(max_slots));  // rows from every rank of the group
  dispatcher_.allocate(arena, N, max_slots);
}

void MoeLayer::forward(const Tensor& x, Tensor out) {
  const uint64_t reads = env_.ops.host_reads();
  {
    PhaseScope phase(Phase::routing);
    router_->forward(x, runtime_.ctx, plan_, dispatcher_.plan_buffers());  // route
  }
  dispatcher_.dispatch(x, plan_);  // dispatch (to the experts' ranks)
  experts_.forward(dispatcher_.expert_input(), dispatcher_.expert_begin(), dispatcher_.expert_output());
  dispatcher_.combine(out);  // combine (back from them)
  host_reads_ += env_.ops.host_reads() - reads;
}

void MoeLayer::forward_reference(const Tensor& x, Tensor out) {
  SY_CHECK(dispatcher_.max_expert_rows(1) == 1, "the reference path holds every expert");
  router_->forward(x, runtime_.ctx, plan_);  // (a host plan: the per-expert loop reads it)
  dispatcher_.upload(plan_, x.numel() / D_);
  experts_.forward_reference(x, plan_.slot_token, plan_.expert_begin, dispatcher_.slot_output());
  dispatcher_.combine_slots(out);
}

void MoeLayer::backward(const Tensor& dout, Tensor dx, BackwardScratch& s) {
  (void)s;
  const uint64_t reads = env_.ops.host_reads();
  std::vector<double>& dgate = dgate_;
  dispatcher_.dispatch_grad(dout, dgate);
  experts_.backward(dispatcher_.expert_output_grad(), dispatcher_.expert_input_grad());
  dispatcher_.combine_grad(dx);
  PhaseScope phase(Phase::routing);
  if (plan_.on_backend) router_->backward(dispatcher_.gate_grad(), runtime_.aux_grad_scale, dx);
  else router_->backward(dgate, runtime_.aux_grad_scale, dx);
  host_reads_ += env_.ops.host_reads() - reads;
}

}  // namespace sy
