#pragma once
// The moe section of a config, validated where it is defined. Semantics are those
// of docs/routing.md (routing contract) and docs/design.md (layout).
#include <cstdint>
#include <string>

#include "core/problems.h"

namespace sy {

enum class RouterKind { switch_top1, gshard_top2, noisy_topk, expert_choice };
enum class EcGrouping { automatic, contiguous, by_position };  // automatic: by arch
enum class EvalRouting { groups, threshold };
enum class SecondPolicy { random, all };
enum class ExpertKind { glu, ffn };  // GLU FFN, or the plain two-layer GELU FFN of the EC paper

const char* router_name(RouterKind r);

struct MoeConfig {
  int64_t num_experts = 0;  // 0: a dense model (no MoE blocks)
  RouterKind router = RouterKind::switch_top1;
  int64_t every = 2;        // blocks every-1, 2·every-1, … are MoE (GLaM / EC layout)
  int64_t group_size = 0;   // tokens per routing group; 0: the rank's whole micro-batch
  double capacity_factor = 1.0;       // token choice, training; <= 0: no limit (dropless)
  double eval_capacity_factor = 2.0;  // token choice, evaluation
  int64_t top_k = 2;                  // noisy_topk's k
  SecondPolicy second_policy = SecondPolicy::random;  // gshard_top2
  double aux_loss = -1;      // load-balancing coefficient; < 0: the router's default (0.01)
  double w_importance = 0.01, w_load = 0.01;  // noisy_topk
  double z_loss = 0.0;
  double jitter = 0.0;       // router-input jitter ε (training only)
  // expert choice
  double ec_capacity = 2.0;  // c: mean experts per token
  EcGrouping ec_grouping = EcGrouping::automatic;
  int64_t max_experts_per_token = 0;  // capped EC's b; 0: uncapped
  EvalRouting eval_routing = EvalRouting::groups;
  double threshold_decay = 0.99;      // EMA of the C-th score for threshold routing
  // experts
  int64_t expert_d_ff = 0;   // 0: model.d_ff
  ExpertKind expert_kind = ExpertKind::glu;
  // Route on the backend (Ops::route_plan: the plan, gate gradients and statistics
  // stay in the backend's memory) instead of on the host. Fixed-capacity routers
  // only (the router table's backend_rule); groups must divide the micro-batch.
  bool device_routing = false;

  bool enabled() const { return num_experts > 0; }
  bool is_moe_block(int64_t layer) const { return enabled() && (layer + 1) % every == 0; }
  double aux_coefficient() const { return aux_loss >= 0 ? aux_loss : 0.01; }
  void validate(Problems& p, int64_t d_model) const;
};

}  // namespace sy
