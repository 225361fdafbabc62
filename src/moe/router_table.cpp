#include "moe/router_table.h"

#include "core/errors.h"
#include "moe/routers.h"

namespace sy {
namespace {

using Metrics = std::vector<std::pair<const char*, double>>;
Metrics no_metrics(const RouterStats&) { return {}; }

}  // namespace

const std::vector<RouterInfo>& router_table() {
  static const std::vector<RouterInfo> table = {
      {RouterKind::switch_top1, "switch_top1", make_switch_top1,
       [](const MoeConfig&) { return 1.0; }, [](const MoeConfig&) { return int64_t{1}; },
       /*balance_loss=*/true, /*noise_weights=*/false, no_metrics, RouteRule::top1},
      {RouterKind::gshard_top2, "gshard_top2", make_gshard_top2,
       [](const MoeConfig&) { return 2.0; }, [](const MoeConfig&) { return int64_t{2}; },
       /*balance_loss=*/true, /*noise_weights=*/false, no_metrics, RouteRule::top2},
      {RouterKind::noisy_topk, "noisy_topk", make_noisy_topk,
       [](const MoeConfig& c) { return static_cast<double>(c.top_k); }, [](const MoeConfig& c) { return c.top_k; },
       /*balance_loss=*/false, /*noise_weights=*/true,
       [](const RouterStats& s) { return Metrics{{"importance_cv2", s.importance}, {"load_cv2", s.load}}; },
       RouteRule::topk},
      // A token can be taken by every expert.
      {RouterKind::expert_choice, "expert_choice", make_expert_choice,
       [](const MoeConfig& c) { return c.ec_capacity; }, [](const MoeConfig& c) { return c.num_experts; },
       /*balance_loss=*/false, /*noise_weights=*/false, no_metrics, RouteRule::expert_choice},
  };
  return table;
}

const RouterInfo& router_info(RouterKind kind) {
  for (const RouterInfo& r : router_table())
    if (r.kind == kind) return r;
  fatalf(ExitCode::internal, "router kind {} has no row in router_table()", static_cast<int>(kind));
}

}  // namespace sy
