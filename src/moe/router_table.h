#pragma once
// The routers, one row each: the name `moe.router` takes, the factory, and what the
// rest of the program needs to know about a router (how many experts a token asks
// for, what it reports). Adding a router means its own file (the rule in
// routing.cpp's style, its Router subclass and factory), one row in
// router_table.cpp, and its tests; nothing else names routers.
#include <memory>
#include <string>
#include <utility>
#include <optional>
#include <vector>

#include "moe/router.h"

namespace sy {

struct RouterInfo {
  RouterKind kind;
  const char* name;
  std::unique_ptr<Router> (*make)(LayerEnv, const std::string& prefix, const MoeConfig&, int64_t d_model,
                                  int layer, Arch);
  // Experts a token asks for before capacity (expert choice: c, the mean): what
  // the memory estimate sizes the experts' activations by.
  double (*experts_per_token)(const MoeConfig&);
  // The most slots one token can fill in a layer: the dispatch buffers hold this
  // many per token.
  int64_t (*max_slots_per_token)(const MoeConfig&);
  bool balance_loss;   // reports E·Σ f·P (metrics `balance_loss`)
  bool noise_weights;  // a second [E, D] weight (w_noise); the gate starts at zero
  // Its own entries in metrics.jsonl's per-layer record (besides the common ones).
  std::vector<std::pair<const char*, double>> (*extra_metrics)(const RouterStats&);
  // Its rule on the backend (Ops::route_plan), when it has one: moe.device_routing.
  std::optional<RouteRule> backend_rule;
};

const std::vector<RouterInfo>& router_table();
const RouterInfo& router_info(RouterKind kind);

}  // namespace sy
