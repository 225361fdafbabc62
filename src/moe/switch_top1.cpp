// Switch Transformer routing (Fedus et al. 2021): each token to its argmax expert.
#include "moe/router.h"
#include "moe/routers.h"

namespace sy {
namespace {

class SwitchTop1 final : public BalancedTokenChoice {
 public:
  using BalancedTokenChoice::BalancedTokenChoice;

 protected:
  GroupRoute select(Group& g, int64_t C) override {
    return route_switch_top1(g.p.data(), g.S, experts(), C);
  }
  void regate(Group& g) override {
    for (Choice& c : g.route.choices) c.gate = g.p[c.token * experts() + c.expert];
  }
  void gate_backward(const Group& g, const double* dgate, GroupGrads& d) const override {
    for (size_t i = 0; i < g.route.choices.size(); ++i) {
      const Choice& c = g.route.choices[i];
      d.dp[c.token * experts() + c.expert] += dgate[i];  // gate = p (not renormalised)
    }
  }
  int64_t choices_per_token() const override { return 1; }
};

}  // namespace

std::unique_ptr<Router> make_switch_top1(LayerEnv env, const std::string& prefix,
                                         const MoeConfig& cfg, int64_t d_model, int layer, Arch arch) {
  return std::make_unique<SwitchTop1>(env, prefix, cfg, d_model, layer, arch);
}

}  // namespace sy
