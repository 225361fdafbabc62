#include "moe/router.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "core/rng.h"
#include "moe/router_table.h"

namespace sy {
namespace {

std::vector<double> host_values(Ops& ops, const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  if (t.dtype == DType::f64) {
    ops.to_host(out.data(), t);
  } else {
    std::vector<float> f(out.size());
    ops.to_host(f.data(), t);
    std::copy(f.begin(), f.end(), out.begin());
  }
  return out;
}

void set_values(Ops& ops, Tensor t, const std::vector<double>& v) {
  if (t.dtype == DType::f64) {
    ops.from_host(t, v.data());
  } else {
    std::vector<float> f(v.begin(), v.end());
    ops.from_host(t, f.data());
  }
}

uint64_t draw_stream(const char* what, int64_t step, int layer) {
  return mix64(hash64(what), mix64(static_cast<uint64_t>(step), static_cast<uint64_t>(layer)));
}

inline double softplus(double x) { return x > 30 ? x : std::log1p(std::exp(x)); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

Router::Router(LayerEnv env, const std::string& prefix, const MoeConfig& cfg, int64_t d_model,
               int layer, Arch arch)
    : env_(env), cfg_(cfg), D_(d_model), E_(cfg.num_experts), layer_(layer) {
  if (cfg_.ec_grouping == EcGrouping::automatic)
    cfg_.ec_grouping = arch == Arch::decoder ? EcGrouping::by_position : EcGrouping::contiguous;
  // N(0, 0.02²), except noisy_topk: zeros (its noise breaks the ties).
  const bool noisy = router_info(cfg.router).noise_weights;
  w_gate_ = env.params.add(prefix + ".router.w_gate", {E_, D_}, noisy ? Init::zeros : Init::normal,
                           0.02, /*decay=*/false);
  if (noisy)
    w_noise_ = env.params.add(prefix + ".router.w_noise", {E_, D_}, Init::zeros, 0.0, false);
  if (cfg_.device_routing) {
    backend_rule_ = router_info(cfg.router).backend_rule;
    SY_CHECK(backend_rule_.has_value(), "moe.device_routing with {}, which has no backend rule", router_name(cfg.router));
    if (!env.ops.routes_on_backend())
      throw Error(ExitCode::bad_input,
                  fmt::format("moe.device_routing: the {} backend of this build cannot route (built without the "
                              "CUDA toolkit's CCCL/Thrust headers); set moe.device_routing: false",
                              env.ops.name()));
  }
}

int64_t Router::backend_slots(int64_t N, int64_t max_seq) const {
  if (!backend_rule_) return 0;
  // E·G·C with C ≤ ⌈c·S/E⌉ ≤ c·S/E + 1: at most c·N + E·G slots, and never more
  // than E·N (C ≤ S). G: one group per position, or N / group_size.
  const int64_t G = groups_by_position() && cfg_.ec_grouping == EcGrouping::by_position
                        ? std::min(N, max_seq)
                        : (cfg_.group_size > 0 ? (N + cfg_.group_size - 1) / cfg_.group_size : 1);
  const double c = *backend_rule_ == RouteRule::expert_choice
                       ? cfg_.ec_capacity
                       : std::max(cfg_.capacity_factor, cfg_.eval_capacity_factor) *
                             static_cast<double>(router_info(cfg_.router).max_slots_per_token(cfg_));
  const int64_t bound = static_cast<int64_t>(std::ceil(c * static_cast<double>(N))) + E_ * G;
  return std::min(bound, E_ * N);
}

void Router::allocate(Arena& arena, int64_t N, int64_t max_seq) {
  const DType t = env_.dtype;
  xr_ = arena.make(t, {N, D_});
  logits_ = arena.make(t, {N, E_});
  probs_ = arena.make(t, {N, E_});
  dlogits_ = arena.make(t, {N, E_});
  dx_ = arena.make(t, {N, D_});
  if (w_noise_ >= 0) noise_logits_ = arena.make(t, {N, E_}), dnoise_ = arena.make(t, {N, E_});
  if (backend_rule_) {
    // The largest scratch any grouping of N rows needs: every row its own group
    // with one slot per expert (E·N candidates and slots, N groups).
    RouteSpec worst;
    worst.rule = *backend_rule_ == RouteRule::topk ? RouteRule::topk : RouteRule::expert_choice;
    worst.groups = N, worst.members = 1, worst.experts = E_, worst.capacity = 1, worst.top_k = cfg_.top_k;
    (void)max_seq;
    backend_state_ = RouteState{arena.make(t, {N * E_}), arena.make(t, {N}), arena.make(t, {route_stats_size(E_)}),
                                arena.make(DType::i32, {static_cast<int64_t>((Ops::route_scratch_bytes(worst) + 3) / 4)})};
    theta_sums_ = arena.make(t, {E_});
  }
}

bool Router::routes_on_backend(const RouteContext& ctx, int64_t N) const {
  if (!backend_rule_ || hold_ || ctx.inference) return false;
  // Expert choice evaluated by its thresholds reads one token at a time: host.
  if (*backend_rule_ == RouteRule::expert_choice && !ctx.training && cfg_.eval_routing == EvalRouting::threshold &&
      !thresholds_.empty())
    return false;
  if (groups_by_position() && cfg_.ec_grouping == EcGrouping::by_position) return ctx.batch * ctx.seq == N;
  const int64_t G = cfg_.group_size > 0 ? std::min(cfg_.group_size, N) : N;
  return N % G == 0;  // equal groups only; a ragged last group routes on the host
}

RouteSpec Router::backend_spec(const RouteContext& ctx, int64_t N) const {
  RouteSpec s;
  s.rule = *backend_rule_;
  s.experts = E_;
  if (groups_by_position() && cfg_.ec_grouping == EcGrouping::by_position) {
    s.groups = ctx.seq, s.members = ctx.batch, s.seq = ctx.seq;
  } else {
    s.members = cfg_.group_size > 0 ? std::min(cfg_.group_size, N) : N;
    s.groups = N / s.members;
  }
  s.capacity = capacity(s.members, ctx.training);
  s.second_random = s.rule == RouteRule::top2 && cfg_.second_policy == SecondPolicy::random && ctx.training;
  s.seed = ctx.seed;
  s.stream = draw_stream("moe.gshard.second", ctx.step, layer_);
  s.first_token = ctx.first_token;
  s.top_k = cfg_.top_k;
  s.noisy = uses_noise() && ctx.training;
  s.noise_stream = draw_stream("moe.noise", ctx.step, layer_);
  s.w_importance = cfg_.w_importance, s.w_load = cfg_.w_load;
  return s;
}

void Router::forward_on_backend(const RouteContext& ctx, int64_t N, RoutePlan& plan, const RoutePlanTensors& t) {
  Ops& ops = env_.ops;
  spec_ = backend_spec(ctx, N);
  const int64_t K = spec_.slots();
  SY_CHECK(t.slot_row.numel() >= K && t.token_begin.numel() >= N + 1,
           "the dispatcher's plan buffers hold {} slots, {} are needed", t.slot_row.numel(), K);
  backend_plan_ = RoutePlanTensors{t.slot_row.view({K}), t.slot_gate.view({K}), t.token_begin.view({N + 1}),
                                   t.token_slots.view({K})};
  ops.route_plan(backend_plan_, backend_view(), backend_inputs(), spec_);
  plan.on_backend = true;
  plan.slot_token.clear();
  plan.slot_gate.clear();
  plan.expert_begin.resize(static_cast<size_t>(E_ + 1));
  for (int64_t e = 0; e <= E_; ++e) plan.expert_begin[e] = e * spec_.groups * spec_.capacity;
  backend_forward_ = true;
  stats_pending_ = true;
  if (ctx.training && groups_by_position()) {  // this step's threshold samples, summed on the backend
    if (theta_groups_ == 0) ops.fill(theta_sums_, 0.0);
    ops.add(theta_sums_, backend_state_.stats.view({E_}, E_));
    theta_groups_ += spec_.groups;
  }
}

std::vector<double>& Router::threshold_samples() {
  if (theta_groups_ > 0) {  // fold the backend's sums in (once per step)
    std::vector<double> sums = host_values(env_.ops, theta_sums_);
    if (theta_samples_.empty()) theta_samples_.assign(static_cast<size_t>(E_ + 1), 0.0);
    for (int64_t e = 0; e < E_; ++e) theta_samples_[e] += sums[e];
    theta_samples_[E_] += static_cast<double>(theta_groups_);
    theta_groups_ = 0;
  }
  return theta_samples_;
}

const RouterStats& Router::stats() const {
  if (stats_pending_) read_backend_stats();
  return stats_;
}

void Router::read_backend_stats() const {
  stats_pending_ = false;
  const std::vector<double> v = host_values(env_.ops, backend_state_.stats);
  const double* tail = v.data() + 2 * E_;
  auto at = [&](RouteStat s) { return tail[static_cast<int>(s)]; };
  RouterStats& s = stats_;
  s = RouterStats{};
  s.tokens = spec_.rows();
  s.groups = spec_.groups;
  s.capacity = spec_.capacity;
  s.tokens_per_expert.resize(static_cast<size_t>(E_));
  for (int64_t e = 0; e < E_; ++e) {
    s.tokens_per_expert[e] = std::llround(v[e]);
    s.choices += s.tokens_per_expert[e];
  }
  s.dropped = std::llround(at(RouteStat::dropped));
  for (int b = 0; b < 5; ++b) s.histogram[b] = std::llround(tail[static_cast<int>(RouteStat::histogram) + b]);
  const double N = static_cast<double>(s.tokens), G = static_cast<double>(s.groups);
  s.entropy = at(RouteStat::entropy_sum) / N;
  s.z = at(RouteStat::lse2_sum) / N;
  s.mean_gate = s.choices ? at(RouteStat::gate_sum) / static_cast<double>(s.choices) : 0;
  const double aux_mean = at(RouteStat::aux_sum) / G;  // the router's unweighted auxiliary loss
  if (router_info(cfg_.router).balance_loss && ctx_.training) s.balance = aux_mean;
  s.aux_weighted = ctx_.training ? aux_weight() * aux_mean + cfg_.z_loss * s.z : 0.0;
  if (spec_.rule == RouteRule::topk && spec_.noisy)
    s.importance = at(RouteStat::importance_cv2), s.load = at(RouteStat::load_cv2);
}

RouteState Router::backend_view() const {
  const int64_t N = spec_.rows();
  return RouteState{backend_state_.first_count.view({spec_.groups * E_}), backend_state_.lse.view({N}),
                    backend_state_.stats, backend_state_.scratch};
}

RouteInputs Router::backend_inputs() const {
  const int64_t N = spec_.rows();
  return RouteInputs{logits_.view({N, E_}), probs_.view({N, E_}),
                     spec_.noisy ? noise_logits_.view({N, E_}) : Tensor{}};
}

void Router::make_groups(const RouteContext& ctx, int64_t N) {
  std::vector<std::vector<int32_t>> rows;
  if (ctx.inference) {  // every token alone
    rows.resize(static_cast<size_t>(N));
    for (int64_t r = 0; r < N; ++r) rows[r].push_back(static_cast<int32_t>(r));
  } else if (groups_by_position() && cfg_.ec_grouping == EcGrouping::by_position) {
    // Group j: token j of every sequence (no token sees later tokens of its own).
    SY_CHECK(ctx.batch * ctx.seq == N, "by_position groups need batch×seq = {} rows", N);
    rows.resize(static_cast<size_t>(ctx.seq));
    for (int64_t j = 0; j < ctx.seq; ++j)
      for (int64_t b = 0; b < ctx.batch; ++b) rows[j].push_back(static_cast<int32_t>(b * ctx.seq + j));
  } else {
    const int64_t G = cfg_.group_size > 0 ? std::min(cfg_.group_size, N) : N;
    for (int64_t start = 0; start < N; start += G) {
      rows.emplace_back();
      for (int64_t r = start; r < std::min(N, start + G); ++r) rows.back().push_back(static_cast<int32_t>(r));
    }
  }
  if (hold_) {
    SY_CHECK(rows.size() == groups_.size(), "held selections need the same groups");
    return;
  }
  groups_.assign(rows.size(), Group{});
  for (size_t g = 0; g < rows.size(); ++g) {
    groups_[g].rows = std::move(rows[g]);
    groups_[g].S = static_cast<int64_t>(groups_[g].rows.size());
  }
}

void Router::forward(const Tensor& x, const RouteContext& ctx, RoutePlan& plan, const RoutePlanTensors& on_backend) {
  Ops& ops = env_.ops;
  const Ops::Fp32Operands fp32(ops);  // router math stays fp32 under precision: bf16
  const int64_t N = x.numel() / D_;
  ctx_ = ctx;
  // Router input, with multiplicative jitter U(1-ε, 1+ε) in training: on the
  // backend with moe.device_routing (the same draws), else on the host.
  jitter_.clear();
  backend_jitter_ = ctx.training && cfg_.jitter > 0 && backend_rule_.has_value();
  if (backend_jitter_) {
    ops.jitter_rows(xr_.view({N, D_}), x.view({N, D_}), jitter_spec());
  } else if (ctx.training && cfg_.jitter > 0) {
    std::vector<double> xv = host_values(ops, x);
    jitter_.resize(xv.size());
    const RngStream rng{ctx.seed, draw_stream("moe.jitter", ctx.step, layer_)};
    for (int64_t i = 0; i < N * D_; ++i) {
      const uint64_t index = static_cast<uint64_t>((ctx.first_token + i / D_) * D_ + i % D_);
      jitter_[i] = 1.0 - cfg_.jitter + 2.0 * cfg_.jitter * rng.uniform_double(index);
      xv[i] *= jitter_[i];
    }
    set_values(ops, xr_, xv);
  } else {
    ops.copy(xr_, x);
  }
  ops.gemm(false, true, N, E_, D_, 1.0, xr_, env_.params.value(w_gate_), 0.0, logits_);
  ops.softmax_forward(probs_, logits_);
  const bool noisy = uses_noise() && ctx.training;
  if (noisy) ops.gemm(false, true, N, E_, D_, 1.0, xr_, env_.params.value(w_noise_), 0.0, noise_logits_);
  backend_forward_ = false;
  stats_pending_ = false;
  if (routes_on_backend(ctx, N)) return forward_on_backend(ctx, N, plan, on_backend);
  host_z_ = host_values(ops, logits_);
  host_p_ = host_values(ops, probs_);
  lse_.assign(static_cast<size_t>(N), 0.0);
  for (int64_t t = 0; t < N; ++t) {
    double mx = host_z_[t * E_];
    for (int64_t e = 1; e < E_; ++e) mx = std::max(mx, host_z_[t * E_ + e]);
    double s = 0;
    for (int64_t e = 0; e < E_; ++e) s += std::exp(host_z_[t * E_ + e] - mx);
    lse_[t] = mx + std::log(s);
  }
  if (noisy) host_nz_ = host_values(ops, noise_logits_);
  make_groups(ctx, N);
  const RngStream normal_rng{ctx.seed, draw_stream("moe.noise", ctx.step, layer_)};
  const RngStream second_rng{ctx.seed, draw_stream("moe.gshard.second", ctx.step, layer_)};
  for (Group& g : groups_) {
    const size_t SE = static_cast<size_t>(g.S * E_);
    g.p.resize(SE), g.z.resize(SE), g.h.resize(SE);
    g.sigma.assign(noisy ? SE : 0, 0.0), g.noise.assign(noisy ? SE : 0, 0.0);
    g.uniform.resize(static_cast<size_t>(g.S));
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t row = g.rows[s];
      const uint64_t token = static_cast<uint64_t>(ctx.first_token + row);
      g.uniform[s] = second_rng.uniform(token);
      for (int64_t e = 0; e < E_; ++e) {
        const size_t i = static_cast<size_t>(s * E_ + e);
        g.p[i] = host_p_[row * E_ + e];
        g.z[i] = host_z_[row * E_ + e];
        g.h[i] = g.z[i];
        if (noisy) {
          g.sigma[i] = softplus(host_nz_[row * E_ + e]) + 0.01;
          g.noise[i] = normal_rng.normal(token * static_cast<uint64_t>(E_) + static_cast<uint64_t>(e));
          g.h[i] += g.noise[i] * g.sigma[i];
        }
      }
    }
    if (hold_) regate(g);
    else g.route = select(g, capacity(g.S, ctx.training));
  }
  if (ctx.training && groups_by_position()) sample_thresholds();
  plan.on_backend = false;
  fill_plan(plan);
  fill_stats(plan);
}

std::vector<Router::Dropped> Router::dropped_choices() const {
  SY_CHECK(!backend_forward_, "dropped choices are kept by host routing only (moe.device_routing: false)");
  std::vector<Dropped> out;
  const int64_t k = choices_per_token();
  if (k <= 0) return out;
  std::vector<int32_t> order(static_cast<size_t>(E_));
  for (const Group& g : groups_) {
    std::vector<std::vector<bool>> kept(static_cast<size_t>(g.S), std::vector<bool>(static_cast<size_t>(E_), false));
    for (const Choice& c : g.route.choices) kept[c.token][c.expert] = true;
    // The score the rule picked by: noisy top-k its noisy logits h, the others
    // the probabilities p (argmax of p, smaller expert on ties, as routing.cpp).
    const std::vector<double>& score = uses_noise() ? g.h : g.p;
    for (int64_t s = 0; s < g.S; ++s) {
      const double* h = score.data() + s * E_;
      for (int64_t e = 0; e < E_; ++e) order[e] = static_cast<int32_t>(e);
      std::partial_sort(order.begin(), order.begin() + std::min(k, E_), order.end(),
                        [&](int32_t a, int32_t b) { return h[a] > h[b] || (h[a] == h[b] && a < b); });
      for (int64_t i = 0; i < std::min(k, E_); ++i)
        if (!kept[s][order[i]]) out.push_back({g.rows[s], order[i], g.p[s * E_ + order[i]]});
    }
  }
  return out;
}

void Router::sample_thresholds() {
  // This step's samples: per group, the C-th largest score each expert saw.
  if (theta_samples_.empty()) theta_samples_.assign(static_cast<size_t>(E_ + 1), 0.0);
  std::vector<double> col;
  for (const Group& g : groups_) {
    const int64_t C = capacity(g.S, true);
    col.resize(static_cast<size_t>(g.S));
    for (int64_t e = 0; e < E_; ++e) {
      for (int64_t s = 0; s < g.S; ++s) col[s] = g.p[s * E_ + e];
      std::nth_element(col.begin(), col.begin() + (C - 1), col.end(), std::greater<double>());
      theta_samples_[e] += col[C - 1];
    }
    theta_samples_[E_] += 1.0;
  }
}

void Router::end_step() {
  // θ_e ← decay·θ_e + (1 − decay)·(mean over the step's groups); the first step sets it.
  if (theta_samples_.empty() || theta_samples_[E_] == 0) return;
  const double groups = theta_samples_[E_];
  if (thresholds_.empty()) {
    thresholds_.resize(static_cast<size_t>(E_));
    for (int64_t e = 0; e < E_; ++e) thresholds_[e] = theta_samples_[e] / groups;
  } else {
    for (int64_t e = 0; e < E_; ++e)
      thresholds_[e] = cfg_.threshold_decay * thresholds_[e] +
                       (1 - cfg_.threshold_decay) * (theta_samples_[e] / groups);
  }
  std::fill(theta_samples_.begin(), theta_samples_.end(), 0.0);
}

void Router::fill_plan(RoutePlan& plan) {
  plan.expert_begin.assign(static_cast<size_t>(E_ + 1), 0);
  plan.slot_token.clear();
  plan.slot_gate.clear();
  slot_group_.clear();
  slot_choice_.clear();
  // Each group's choices are expert-major; walk experts, then groups, then slots.
  std::vector<size_t> cursor(groups_.size(), 0);
  for (int64_t e = 0; e < E_; ++e) {
    plan.expert_begin[e] = plan.slots();
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
      const std::vector<Choice>& ch = groups_[gi].route.choices;
      size_t& i = cursor[gi];
      for (; i < ch.size() && ch[i].expert == e; ++i) {
        plan.slot_token.push_back(groups_[gi].rows[ch[i].token]);
        plan.slot_gate.push_back(ch[i].gate);
        slot_group_.push_back(static_cast<int64_t>(gi));
        slot_choice_.push_back(static_cast<int64_t>(i));
      }
    }
  }
  plan.expert_begin[E_] = plan.slots();
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    SY_CHECK(cursor[gi] == groups_[gi].route.choices.size(), "group {} choices not expert-major", gi);
}

void Router::fill_stats(const RoutePlan& plan) {
  RouterStats& s = stats_;
  const int64_t N = static_cast<int64_t>(lse_.size());
  s = RouterStats{};
  s.tokens = N;
  s.groups = static_cast<int64_t>(groups_.size());
  s.tokens_per_expert.resize(static_cast<size_t>(E_));
  for (int64_t e = 0; e < E_; ++e) s.tokens_per_expert[e] = plan.expert_begin[e + 1] - plan.expert_begin[e];
  s.choices = plan.slots();
  for (const Group& g : groups_) {
    s.dropped += g.route.dropped;
    s.empty_slots += g.route.empty_slots;
    experts_per_token_histogram(g.route, g.S, s.histogram);
    s.capacity = capacity(g.S, ctx_.training);
  }
  double entropy = 0, z = 0;
  for (int64_t t = 0; t < N; ++t) {
    for (int64_t e = 0; e < E_; ++e) {
      const double p = host_p_[t * E_ + e];
      if (p > 0) entropy -= p * std::log(p);
    }
    z += lse_[t] * lse_[t];
  }
  s.entropy = N ? entropy / N : 0;
  s.z = N ? z / N : 0;
  double gates = 0;
  for (double g : plan.slot_gate) gates += g;
  s.mean_gate = s.choices ? gates / s.choices : 0;
  double aux_sum = 0;
  if (ctx_.training)
    for (const Group& g : groups_) aux_sum += aux(g, 0.0, nullptr);
  const double aux_mean = groups_.empty() ? 0 : aux_sum / static_cast<double>(groups_.size());
  if (router_info(cfg_.router).balance_loss) s.balance = aux_mean;
  s.aux_weighted = ctx_.training ? aux_weight() * aux_mean + cfg_.z_loss * s.z : 0.0;
  if (ctx_.training) add_stats(s);
}

// The value by the rule's own formula (from the current p: held selections keep f
// but not p), and its gradient ∂/∂p[s, e] = E·f_e / S with f fixed.
double Router::balance_aux(const Group& g, double scale, const GroupRoute& r, GroupGrads* d) const {
  if (d)
    for (int64_t e = 0; e < E_; ++e)
      for (int64_t s = 0; s < g.S; ++s)
        d->dp[s * E_ + e] += scale * static_cast<double>(E_) * r.first_fraction[e] / g.S;
  return balance_value(g.p.data(), g.S, E_, r.first_fraction);
}

void Router::backward(const std::vector<double>& dgate, double aux_scale, Tensor dx) {
  Ops& ops = env_.ops;
  const int64_t N = static_cast<int64_t>(lse_.size());
  SY_CHECK(static_cast<int64_t>(dgate.size()) == static_cast<int64_t>(slot_group_.size()),
           "dgate has {} entries for {} slots", dgate.size(), slot_group_.size());
  std::vector<std::vector<double>> per_group(groups_.size());
  for (size_t gi = 0; gi < groups_.size(); ++gi) per_group[gi].assign(groups_[gi].route.choices.size(), 0.0);
  for (size_t s = 0; s < dgate.size(); ++s) per_group[slot_group_[s]][slot_choice_[s]] = dgate[s];

  std::vector<double> dz(static_cast<size_t>(N * E_), 0.0), dsigma;
  const bool noisy = uses_noise() && ctx_.training;
  if (noisy) dsigma.assign(dz.size(), 0.0);
  const double aux_group_scale =
      ctx_.training ? aux_scale * aux_weight() / static_cast<double>(groups_.size()) : 0.0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const Group& g = groups_[gi];
    const size_t SE = static_cast<size_t>(g.S * E_);
    GroupGrads d{std::vector<double>(SE, 0.0), std::vector<double>(SE, 0.0),
                 std::vector<double>(SE, 0.0), std::vector<double>(SE, 0.0)};
    gate_backward(g, per_group[gi].data(), d);
    if (aux_group_scale != 0) aux(g, aux_group_scale, &d);
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t row = g.rows[s];
      // Through the softmax: ∂z = p ⊙ (∂p − Σ p ∂p).
      double dot = 0;
      for (int64_t e = 0; e < E_; ++e) dot += g.p[s * E_ + e] * d.dp[s * E_ + e];
      for (int64_t e = 0; e < E_; ++e) {
        const size_t i = static_cast<size_t>(s * E_ + e);
        dz[row * E_ + e] += g.p[i] * (d.dp[i] - dot) + d.dh[i] + d.dz[i];
        if (noisy) dsigma[row * E_ + e] += d.dh[i] * g.noise[i] + d.dsigma[i];
      }
    }
  }
  if (cfg_.z_loss > 0 && ctx_.training)  // ∂/∂z of z_loss · mean_t lse_t²
    for (int64_t t = 0; t < N; ++t)
      for (int64_t e = 0; e < E_; ++e)
        dz[t * E_ + e] += aux_scale * cfg_.z_loss * 2.0 * lse_[t] * host_p_[t * E_ + e] / N;

  set_values(ops, dlogits_, dz);
  if (noisy) {  // σ = softplus(x·W_noiseᵀ) + 0.01
    std::vector<double> dnz(dsigma.size());
    for (size_t i = 0; i < dnz.size(); ++i) dnz[i] = dsigma[i] * sigmoid(host_nz_[i]);
    set_values(ops, dnoise_, dnz);
  }
  router_input_backward(N, dx, noisy);
}

void Router::backward(const Tensor& dgate, double aux_scale, Tensor dx) {
  SY_CHECK(backend_forward_, "a backend gate gradient for a host plan");
  const int64_t N = spec_.rows();
  // The auxiliary loss per group (the host's aux_group_scale) and the z-loss.
  const double group_scale = ctx_.training ? aux_scale * aux_weight() / static_cast<double>(spec_.groups) : 0.0;
  const double z_scale = ctx_.training && cfg_.z_loss > 0 ? aux_scale * cfg_.z_loss : 0.0;
  env_.ops.route_backward(dlogits_.view({N, E_}), spec_.noisy ? dnoise_.view({N, E_}) : Tensor{}, dgate,
                          backend_plan_, backend_view(), backend_inputs(), spec_, group_scale, z_scale);
  router_input_backward(N, dx, spec_.noisy);
}

// dlogits_ (and with noise dnoise_) → the router weights' gradients and
// dx += ∂L/∂x (through the jitter, if any).
void Router::router_input_backward(int64_t N, Tensor dx, bool noise) {
  Ops& ops = env_.ops;
  const Ops::Fp32Operands fp32(ops);
  ops.gemm(true, false, E_, D_, N, 1.0, dlogits_, xr_, 1.0, env_.params.grad(w_gate_));
  ops.gemm(false, false, N, D_, E_, 1.0, dlogits_, env_.params.value(w_gate_), 0.0, dx_);
  if (noise) {
    ops.gemm(true, false, E_, D_, N, 1.0, dnoise_, xr_, 1.0, env_.params.grad(w_noise_));
    ops.gemm(false, false, N, D_, E_, 1.0, dnoise_, env_.params.value(w_noise_), 1.0, dx_);
  }
  if (!jitter_.empty()) {
    std::vector<double> d = host_values(ops, dx_);
    for (size_t i = 0; i < d.size(); ++i) d[i] *= jitter_[i];
    set_values(ops, dx_, d);
  } else if (backend_jitter_) {
    ops.jitter_rows(dx_.view({N, D_}), dx_.view({N, D_}), jitter_spec());
  }
  ops.add(dx, dx_);
}

JitterSpec Router::jitter_spec() const {
  return JitterSpec{ctx_.seed, draw_stream("moe.jitter", ctx_.step, layer_), ctx_.first_token, cfg_.jitter};
}

std::unique_ptr<Router> make_router(LayerEnv env, const std::string& prefix, const MoeConfig& cfg,
                                    int64_t d_model, int layer, Arch arch) {
  return router_info(cfg.router).make(env, prefix, cfg, d_model, layer, arch);
}

}  // namespace sy
