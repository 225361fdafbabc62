// Expert Choice routing (Zhou et al. 2022): each expert takes its top-C tokens;
// optionally capped at b experts per token (EC-CAP); causal evaluation by
// per-expert thresholds.
#include "moe/router.h"
#include "moe/routers.h"
#include "core/errors.h"

namespace sy {
namespace {

class ExpertChoice final : public Router {
 public:
  using Router::Router;

 protected:
  GroupRoute select(Group& g, int64_t C) override {
    const int64_t E = experts();
    SY_CHECK(!context().inference || !thresholds().empty(),
             "expert choice at inference routes by its trained thresholds, and this model has none "
             "(weights saved before thresholds were kept?)");
    if (!context().training && (cfg().eval_routing == EvalRouting::threshold || context().inference) &&
        !thresholds().empty()) {
      // Token t → expert e iff p_t[e] ≥ θ_e: reads one token at a time (causal).
      GroupRoute r;
      for (int64_t e = 0; e < E; ++e)
        for (int64_t s = 0; s < g.S; ++s)
          if (g.p[s * E + e] >= thresholds()[e])
            r.choices.push_back({static_cast<int32_t>(s), static_cast<int32_t>(e), g.p[s * E + e]});
      return r;
    }
    if (cfg().max_experts_per_token > 0)
      return route_expert_choice_capped(g.p.data(), g.S, E, C, cfg().max_experts_per_token);
    return route_expert_choice(g.p.data(), g.S, E, C);
  }
  void regate(Group& g) override {
    for (Choice& c : g.route.choices) c.gate = g.p[c.token * experts() + c.expert];
  }
  void gate_backward(const Group& g, const double* dgate, GroupGrads& d) const override {
    for (size_t i = 0; i < g.route.choices.size(); ++i) {
      const Choice& c = g.route.choices[i];
      d.dp[c.token * experts() + c.expert] += dgate[i];  // gate = p_t[e], no renormalisation
    }
  }
  int64_t capacity(int64_t S, bool training) const override {
    (void)training;
    return expert_choice_capacity(cfg().ec_capacity, S, experts());
  }
  bool groups_by_position() const override { return true; }
};

}  // namespace

std::unique_ptr<Router> make_expert_choice(LayerEnv env, const std::string& prefix,
                                           const MoeConfig& cfg, int64_t d_model, int layer, Arch arch) {
  return std::make_unique<ExpertChoice>(env, prefix, cfg, d_model, layer, arch);
}

}  // namespace sy
