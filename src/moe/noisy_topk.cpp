// Noisy top-k gating (Shazeer et al. 2017): h = z + n·(softplus(x·W_noise) + 0.01)
// in training, top-k of h, softmax over the kept k; importance and load losses.
#include <algorithm>
#include <cmath>

#include "moe/router.h"
#include "moe/routers.h"

namespace sy {
namespace {

inline double normal_pdf(double u) { return std::exp(-0.5 * u * u) / std::sqrt(2.0 * M_PI); }
inline double normal_cdf(double u) { return 0.5 * std::erfc(-u / std::sqrt(2.0)); }

class NoisyTopK final : public Router {
 public:
  using Router::Router;

 protected:
  GroupRoute select(Group& g, int64_t C) override {
    return route_noisy_topk(g.h.data(), g.S, experts(), cfg().top_k, C, &g.topk_expert, &g.topk_gate);
  }
  void regate(Group& g) override {
    const int64_t E = experts(), k = cfg().top_k;
    for (int64_t s = 0; s < g.S; ++s) {
      double mx = -1e300, z = 0;
      for (int64_t j = 0; j < k; ++j) mx = std::max(mx, g.h[s * E + g.topk_expert[s * k + j]]);
      for (int64_t j = 0; j < k; ++j) z += std::exp(g.h[s * E + g.topk_expert[s * k + j]] - mx);
      for (int64_t j = 0; j < k; ++j)
        g.topk_gate[s * k + j] = std::exp(g.h[s * E + g.topk_expert[s * k + j]] - mx) / z;
    }
    for (Choice& c : g.route.choices)
      for (int64_t j = 0; j < k; ++j)
        if (g.topk_expert[c.token * k + j] == c.expert) c.gate = g.topk_gate[c.token * k + j];
  }
  // ∂L/∂gate over each token's k kept scores → through their softmax into dh.
  void softmax_k_backward(const Group& g, const std::vector<double>& dgate_tk, GroupGrads& d) const {
    const int64_t E = experts(), k = cfg().top_k;
    for (int64_t s = 0; s < g.S; ++s) {
      double dot = 0;
      for (int64_t j = 0; j < k; ++j) dot += g.topk_gate[s * k + j] * dgate_tk[s * k + j];
      for (int64_t j = 0; j < k; ++j)
        d.dh[s * E + g.topk_expert[s * k + j]] +=
            g.topk_gate[s * k + j] * (dgate_tk[s * k + j] - dot);
    }
  }
  void gate_backward(const Group& g, const double* dgate, GroupGrads& d) const override {
    const int64_t k = cfg().top_k;
    std::vector<double> dtk(static_cast<size_t>(g.S * k), 0.0);  // dropped choices: 0
    for (size_t i = 0; i < g.route.choices.size(); ++i) {
      const Choice& c = g.route.choices[i];
      for (int64_t j = 0; j < k; ++j)
        if (g.topk_expert[c.token * k + j] == c.expert) dtk[c.token * k + j] += dgate[i];
    }
    softmax_k_backward(g, dtk, d);
  }
  double aux(const Group& g, double scale, GroupGrads* d) const override {
    const int64_t E = experts(), k = cfg().top_k;
    // Importance: Σ_t gate_t[e] over every token's top-k.
    std::vector<double> importance(static_cast<size_t>(E), 0.0), gi;
    for (int64_t s = 0; s < g.S; ++s)
      for (int64_t j = 0; j < k; ++j) importance[g.topk_expert[s * k + j]] += g.topk_gate[s * k + j];
    const double cv_importance = cv_squared(importance, d ? &gi : nullptr);
    // Load: Σ_t Φ((z_t[e] − θ_te)/σ_te), θ the k-th largest h_t excluding e.
    double cv_load = 0;
    std::vector<double> load(static_cast<size_t>(E), 0.0), gl;
    std::vector<int32_t> theta_at(static_cast<size_t>(g.S * E), -1);
    const bool has_load = !g.sigma.empty() && k < E;
    if (has_load) {
      std::vector<int32_t> order(static_cast<size_t>(E));
      for (int64_t s = 0; s < g.S; ++s) {
        const double* h = g.h.data() + s * E;
        for (int64_t e = 0; e < E; ++e) order[e] = static_cast<int32_t>(e);
        std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
          return h[a] > h[b] || (h[a] == h[b] && a < b);
        });
        std::vector<int64_t> rank(static_cast<size_t>(E));
        for (int64_t r = 0; r < E; ++r) rank[order[r]] = r;
        for (int64_t e = 0; e < E; ++e) {
          const int32_t at = rank[e] < k ? order[k] : order[k - 1];
          theta_at[s * E + e] = at;
          const double u = (g.z[s * E + e] - h[at]) / g.sigma[s * E + e];
          load[e] += normal_cdf(u);
        }
      }
      cv_load = cv_squared(load, d ? &gl : nullptr);
    }
    last_importance_ = cv_importance;
    last_load_ = cv_load;
    if (d) {
      std::vector<double> dtk(static_cast<size_t>(g.S * k));
      for (int64_t s = 0; s < g.S; ++s)
        for (int64_t j = 0; j < k; ++j)
          dtk[s * k + j] = scale * cfg().w_importance * gi[g.topk_expert[s * k + j]];
      softmax_k_backward(g, dtk, *d);
      if (has_load)
        for (int64_t s = 0; s < g.S; ++s)
          for (int64_t e = 0; e < E; ++e) {
            const size_t i = static_cast<size_t>(s * E + e);
            const int32_t at = theta_at[i];
            const double sigma = g.sigma[i], u = (g.z[i] - g.h[s * E + at]) / sigma;
            const double c = scale * cfg().w_load * gl[e] * normal_pdf(u);
            d->dz[i] += c / sigma;
            d->dh[s * E + at] -= c / sigma;
            d->dsigma[i] -= c * u / sigma;
          }
    }
    return cfg().w_importance * cv_importance + cfg().w_load * cv_load;
  }
  double aux_weight() const override { return 1.0; }  // aux() applies w_importance, w_load
  int64_t capacity(int64_t S, bool training) const override {
    return token_choice_capacity(training ? cfg().capacity_factor : cfg().eval_capacity_factor,
                                 cfg().top_k, S, experts());
  }
  bool uses_noise() const override { return true; }
  int64_t choices_per_token() const override { return cfg().top_k; }
  void add_stats(RouterStats& s) const override {
    s.importance = last_importance_;
    s.load = last_load_;
  }

 private:
  mutable double last_importance_ = 0, last_load_ = 0;
};

}  // namespace

std::unique_ptr<Router> make_noisy_topk(LayerEnv env, const std::string& prefix,
                                        const MoeConfig& cfg, int64_t d_model, int layer, Arch arch) {
  return std::make_unique<NoisyTopK>(env, prefix, cfg, d_model, layer, arch);
}

}  // namespace sy
