#include "moe/moe_config.h"

#include "moe/router_table.h"

namespace sy {

const char* router_name(RouterKind r) { return router_info(r).name; }

void MoeConfig::validate(Problems& p, int64_t d_model) const {
  (void)d_model;
  p.require(num_experts >= 0, "moe.num_experts", num_experts, "must be >= 0 (0: dense)");
  if (!enabled()) return;
  p.require(every >= 1, "moe.every", every, "must be positive");
  p.require(group_size >= 0, "moe.group_size", group_size, "must be >= 0 (0: the micro-batch)");
  p.require(expert_d_ff >= 0, "moe.expert_d_ff", expert_d_ff, "must be >= 0 (0: model.d_ff)");
  p.require(jitter >= 0 && jitter < 1, "moe.jitter", jitter, "must be in [0, 1)");
  p.require(z_loss >= 0, "moe.z_loss", z_loss, "must be >= 0");
  if (router == RouterKind::gshard_top2)
    p.require(num_experts >= 2, "moe.num_experts", num_experts, "gshard_top2 needs at least 2 experts");
  if (router == RouterKind::noisy_topk) {
    p.require(top_k >= 1, "moe.top_k", top_k, "must be positive");
    p.require(top_k <= num_experts, "moe.top_k", top_k,
              "must not exceed moe.num_experts (" + std::to_string(num_experts) + ")");
    p.require(w_importance >= 0, "moe.w_importance", w_importance, "must be >= 0");
    p.require(w_load >= 0, "moe.w_load", w_load, "must be >= 0");
  }
  if (router == RouterKind::expert_choice) {
    p.require(ec_capacity > 0, "moe.expert_choice.capacity", ec_capacity,
              "must be positive for expert_choice (mean experts per token)");
    p.require(max_experts_per_token >= 0 && max_experts_per_token <= num_experts,
              "moe.expert_choice.max_experts_per_token", max_experts_per_token,
              "must be in [0, moe.num_experts] (0: uncapped)");
    p.require(threshold_decay > 0 && threshold_decay < 1, "moe.expert_choice.threshold_decay", threshold_decay,
              "must be in (0, 1)");
  }
  if (device_routing) {
    const std::string why = "moe.device_routing routes switch_top1, gshard_top2, noisy_topk and uncapped expert_choice";
    p.require(router_info(router).backend_rule.has_value(), "moe.router", router_name(router),
              "has no backend rule: " + why + "; set moe.device_routing: false");
    p.require(router != RouterKind::expert_choice || max_experts_per_token == 0,
              "moe.expert_choice.max_experts_per_token", max_experts_per_token,
              "capped expert choice routes on the host only: " + why);
    if (router == RouterKind::noisy_topk) {
      p.require(num_experts <= kRouteMaxTopkExperts, "moe.num_experts", num_experts,
                "noisy_topk on the backend takes at most " + std::to_string(kRouteMaxTopkExperts) + " experts");
      p.require(top_k <= kRouteMaxTopK, "moe.top_k", top_k,
                "noisy_topk on the backend takes k up to " + std::to_string(kRouteMaxTopK));
    }
    if (router != RouterKind::expert_choice) {
      p.require(capacity_factor > 0, "moe.capacity_factor", capacity_factor,
                "must be positive with moe.device_routing (a fixed capacity; dropless routes on the host)");
      p.require(eval_capacity_factor > 0, "moe.eval_capacity_factor", eval_capacity_factor,
                "must be positive with moe.device_routing (a fixed capacity)");
    }
  }
}

}  // namespace sy
