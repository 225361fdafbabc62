// GShard routing (Lepikhin et al. 2020): top-2 experts, gates renormalised over the
// pair, second choice kept at random in proportion to its gate.
#include "moe/router.h"
#include "moe/routers.h"

namespace sy {
namespace {

class GshardTop2 final : public BalancedTokenChoice {
 public:
  using BalancedTokenChoice::BalancedTokenChoice;

 protected:
  GroupRoute select(Group& g, int64_t C) override {
    const bool random = cfg().second_policy == SecondPolicy::random && context().training;
    // The rule also hands back each token's pair, which regate and backward need.
    return route_gshard_top2(g.p.data(), g.S, experts(), C, random ? g.uniform.data() : nullptr,
                             &g.topk_expert);
  }
  void regate(Group& g) override {
    const int64_t E = experts();
    for (Choice& c : g.route.choices) {
      const double p1 = g.p[c.token * E + g.topk_expert[2 * c.token]];
      const double p2 = g.p[c.token * E + g.topk_expert[2 * c.token + 1]];
      c.gate = g.p[c.token * E + c.expert] / (p1 + p2);
    }
  }
  void gate_backward(const Group& g, const double* dgate, GroupGrads& d) const override {
    const int64_t E = experts();
    for (size_t i = 0; i < g.route.choices.size(); ++i) {
      const Choice& c = g.route.choices[i];
      const int32_t e1 = g.topk_expert[2 * c.token], e2 = g.topk_expert[2 * c.token + 1];
      const double p1 = g.p[c.token * E + e1], p2 = g.p[c.token * E + e2], s = p1 + p2;
      // gate1 = p1/s: ∂/∂p1 = p2/s², ∂/∂p2 = −p1/s²; gate2 symmetric.
      const int32_t self = c.expert, other = c.expert == e1 ? e2 : e1;
      const double ps = g.p[c.token * E + self], po = g.p[c.token * E + other];
      d.dp[c.token * E + self] += dgate[i] * po / (s * s);
      d.dp[c.token * E + other] -= dgate[i] * ps / (s * s);
    }
  }
  int64_t choices_per_token() const override { return 2; }
};

}  // namespace

std::unique_ptr<Router> make_gshard_top2(LayerEnv env, const std::string& prefix,
                                         const MoeConfig& cfg, int64_t d_model, int layer, Arch arch) {
  return std::make_unique<GshardTop2>(env, prefix, cfg, d_model, layer, arch);
}

}  // namespace sy
