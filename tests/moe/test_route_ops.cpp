// Routing on a backend (Ops::route_plan / route_backward, one Thrust source for
// the CPU's OpenMP system and for CUDA) against the host rules of routing.h, its
// oracle. The plan must equal the host's: the same (row, expert) pairs in the same
// slots, gates bit for bit, drops, and the token-major index; the statistics and
// the router gradient agree with the host's formulas. Over rules, group layouts
// (contiguous, by position), expert counts and capacities, with ties.
// test_route_ops runs them on the CPU backend; test_route_ops_cuda (SY_TEST_CUDA)
// on a GPU, skipping without one.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/rng.h"
#include "moe/routing.h"
#include "test_util.h"

#ifndef SY_TEST_CUDA
#define SY_TEST_CUDA 0
#endif
#if SY_TEST_CUDA
#include "backend/gpu_test.h"
#define SY_ROUTE_BACKEND_NEEDS() SY_REQUIRE_GPUS(1)
#define SY_ROUTE_SUITE RouteOpOracleCuda
#else
#define SY_ROUTE_BACKEND_NEEDS()                                                            \
  do {                                                                                      \
    if (!make_ops(Device::cpu)->routes_on_backend())                                        \
      GTEST_SKIP() << "skipped: built without Thrust (the CUDA toolkit's CCCL headers)";    \
  } while (0)
#define SY_ROUTE_SUITE RouteOpOracle
#endif

namespace sy {
namespace {

std::unique_ptr<Ops> backend() {
#if SY_TEST_CUDA
  return make_ops(Device::cuda);
#else
  return make_ops(Device::cpu);
#endif
}

template <class T>
void softmax_rows(const std::vector<T>& z, int64_t N, int64_t E, std::vector<T>& p);

// Random logits [N, E] (optionally with equal values: ties) and their softmax, in T.
template <class T>
void make_inputs(int64_t N, int64_t E, uint64_t seed, bool ties, std::vector<T>& z, std::vector<T>& p) {
  std::vector<double> v = test::random_vec(N * E, seed, 2.0);
  if (ties)
    for (int64_t t = 0; t < N; ++t)
      for (int64_t e = 0; e < E; ++e)
        if ((t + e) % 3 == 0) v[t * E + e] = 0.5;
  z.assign(v.begin(), v.end());
  softmax_rows(z, N, E, p);
}

template <class T>
void softmax_rows(const std::vector<T>& z, int64_t N, int64_t E, std::vector<T>& p) {
  p.resize(z.size());
  for (int64_t t = 0; t < N; ++t) {
    double m = -1e300, s = 0;
    for (int64_t e = 0; e < E; ++e) m = std::max(m, static_cast<double>(z[t * E + e]));
    for (int64_t e = 0; e < E; ++e) s += std::exp(static_cast<double>(z[t * E + e]) - m);
    for (int64_t e = 0; e < E; ++e) p[t * E + e] = static_cast<T>(std::exp(static_cast<double>(z[t * E + e]) - m) / s);
  }
}

int64_t row_of(const RouteSpec& s, int64_t g, int64_t m) { return s.seq > 0 ? m * s.seq + g : g * s.members + m; }

// What the backend returned.
template <class T>
struct Result {
  std::vector<int32_t> slot_row, token_begin, token_slots;
  std::vector<T> slot_gate, first_count, lse, stats, dlogits, dnoise;
};

template <class T>
Result<T> run(Ops& ops, const RouteSpec& s, const std::vector<T>& z, const std::vector<T>& p,
              const std::vector<T>* dgate = nullptr, double balance_scale = 0, double z_scale = 0,
              const std::vector<T>* noise_logits = nullptr) {
  const DType dt = std::is_same<T, double>::value ? DType::f64 : DType::f32;
  Arena arena(ops);
  const int64_t N = s.rows(), E = s.experts, K = s.slots();
  RoutePlanTensors plan{arena.make(DType::i32, {K}), arena.make(dt, {K}), arena.make(DType::i32, {N + 1}),
                        arena.make(DType::i32, {K})};
  const RouteState state{arena.make(dt, {s.groups, E}), arena.make(dt, {N}), arena.make(dt, {route_stats_size(E)}),
                         arena.make(DType::i32, {static_cast<int64_t>((Ops::route_scratch_bytes(s) + 3) / 4)})};
  const RouteInputs in{arena.make(dt, {N, E}), arena.make(dt, {N, E}),
                       noise_logits ? arena.make(dt, {N, E}) : Tensor{}};
  ops.from_host(in.logits, z.data());
  ops.from_host(in.probs, p.data());
  if (noise_logits) ops.from_host(in.noise_logits, noise_logits->data());
  ops.route_plan(plan, state, in, s);
  const Tensor first = state.first_count, lse = state.lse, stats = state.stats;
  Result<T> r;
  r.slot_row.resize(K), r.token_slots.resize(K), r.token_begin.resize(N + 1);
  r.slot_gate.resize(K), r.first_count.resize(s.groups * E), r.lse.resize(N);
  r.stats.resize(route_stats_size(E));
  ops.to_host(r.slot_row.data(), plan.slot_row);
  ops.to_host(r.slot_gate.data(), plan.slot_gate);
  ops.to_host(r.token_begin.data(), plan.token_begin);
  ops.to_host(r.token_slots.data(), plan.token_slots);
  ops.to_host(r.first_count.data(), first);
  ops.to_host(r.lse.data(), lse);
  ops.to_host(r.stats.data(), stats);
  if (dgate) {
    Tensor dg = arena.make(dt, {K}), dl = arena.make(dt, {N, E});
    const Tensor dn = noise_logits ? arena.make(dt, {N, E}) : Tensor{};
    ops.from_host(dg, dgate->data());
    ops.route_backward(dl, dn, dg, plan, state, in, s, balance_scale, z_scale);
    r.dlogits.resize(N * E);
    ops.to_host(r.dlogits.data(), dl);
    if (noise_logits) {
      r.dnoise.resize(N * E);
      ops.to_host(r.dnoise.data(), dn);
    }
  }
  return r;
}

// The host rules on each group, laid out as the backend lays out its plan.
struct Oracle {
  std::vector<int32_t> slot_row;
  std::vector<double> slot_gate;
  std::vector<GroupRoute> routes;  // per group
  std::vector<std::vector<int32_t>> pairs;  // top2: per group, each member's (first, second)
  int64_t dropped = 0;
  double balance = 0;
};

// noisy top-k's scores as the host router makes them (Router::forward): h = z +
// n·(softplus(noise logit) + 0.01), n = RngStream{seed, noise_stream}.normal(token·E + e).
template <class T>
std::vector<double> noisy_scores(const RouteSpec& s, const std::vector<T>& z, const std::vector<T>* nz) {
  std::vector<double> h(z.begin(), z.end());
  if (!s.noisy) return h;
  const RngStream rng{s.seed, s.noise_stream};
  for (int64_t t = 0; t < s.rows(); ++t)
    for (int64_t e = 0; e < s.experts; ++e) {
      const double x = (*nz)[t * s.experts + e];
      const double sigma = (x > 30 ? x : std::log1p(std::exp(x))) + 0.01;
      h[t * s.experts + e] += rng.normal(static_cast<uint64_t>((s.first_token + t) * s.experts + e)) * sigma;
    }
  return h;
}

template <class T>
Oracle oracle(const RouteSpec& s, const std::vector<T>& p, const std::vector<double>* h = nullptr) {
  const int64_t E = s.experts, S = s.members;
  Oracle o;
  o.slot_row.assign(s.slots(), -1);
  o.slot_gate.assign(s.slots(), 0.0);
  const RngStream rng{s.seed, s.stream};
  for (int64_t g = 0; g < s.groups; ++g) {
    std::vector<T> gp(S * E);
    std::vector<float> u(S);
    for (int64_t m = 0; m < S; ++m) {
      const int64_t row = row_of(s, g, m);
      for (int64_t e = 0; e < E; ++e) gp[m * E + e] = p[row * E + e];
      u[m] = rng.uniform(static_cast<uint64_t>(s.first_token + row));
    }
    GroupRoute r;
    std::vector<int32_t> pair;
    std::vector<double> gh(S * E);
    if (h)
      for (int64_t m = 0; m < S; ++m)
        for (int64_t e = 0; e < E; ++e) gh[m * E + e] = (*h)[row_of(s, g, m) * E + e];
    if (s.rule == RouteRule::topk) r = route_noisy_topk(gh.data(), S, E, s.top_k, s.capacity);
    else if (s.rule == RouteRule::top1) r = route_switch_top1(gp.data(), S, E, s.capacity);
    else if (s.rule == RouteRule::top2)
      r = route_gshard_top2(gp.data(), S, E, s.capacity, s.second_random ? u.data() : nullptr, &pair);
    else r = route_expert_choice(gp.data(), S, E, s.capacity);
    std::vector<int64_t> fill(E, 0);
    for (const Choice& c : r.choices) {
      const int64_t slot = (c.expert * s.groups + g) * s.capacity + fill[c.expert]++;
      o.slot_row[slot] = static_cast<int32_t>(row_of(s, g, c.token));
      o.slot_gate[slot] = c.gate;
    }
    o.dropped += r.dropped;
    o.balance += r.aux;
    o.routes.push_back(r);
    o.pairs.push_back(pair);
  }
  return o;
}

std::string describe(const RouteSpec& s) {
  const char* rule = s.rule == RouteRule::top1   ? "top1"
                     : s.rule == RouteRule::top2 ? "top2"
                     : s.rule == RouteRule::topk ? "topk"
                                                 : "expert_choice";
  return std::string(rule) + " G " + std::to_string(s.groups) + " S " + std::to_string(s.members) + " E " +
         std::to_string(s.experts) + " C " + std::to_string(s.capacity) + (s.seq ? " by position" : "") +
         (s.second_random ? " random second" : "");
}

template <class T>
void expect_plan(const RouteSpec& s, bool ties, uint64_t seed) {
  auto ops = backend();
  std::vector<T> z, p, nz, unused;
  make_inputs<T>(s.rows(), s.experts, seed, ties, z, p);
  make_inputs<T>(s.rows(), s.experts, seed + 1, false, nz, unused);  // noise logits
  const bool noisy = s.rule == RouteRule::topk && s.noisy;
  const Result<T> got = run<T>(*ops, s, z, p, nullptr, 0, 0, noisy ? &nz : nullptr);
  const std::vector<double> h = noisy_scores(s, z, &nz);
  const Oracle want = oracle(s, p, &h);
  const std::string what = describe(s) + (ties ? " ties" : "");
  ASSERT_EQ(got.slot_row, want.slot_row) << what;
  // Gates in the router's dtype: the host's double gate rounded once, as its plan
  // upload rounds it.
  for (int64_t k = 0; k < s.slots(); ++k)
    if (SY_TEST_CUDA && noisy)
      ASSERT_NEAR(got.slot_gate[k], want.slot_gate[k], 1e-6) << what << " slot " << k;
    else
      ASSERT_EQ(got.slot_gate[k], static_cast<T>(want.slot_gate[k])) << what << " slot " << k;
  // The token-major index: each row's filled slots, ascending.
  const int64_t N = s.rows(), E = s.experts;
  ASSERT_EQ(got.token_begin[0], 0) << what;
  for (int64_t t = 0; t < N; ++t) {
    std::vector<int32_t> mine;
    for (int64_t k = 0; k < s.slots(); ++k)
      if (want.slot_row[k] == t) mine.push_back(static_cast<int32_t>(k));
    const std::vector<int32_t> run_t(got.token_slots.begin() + got.token_begin[t],
                                     got.token_slots.begin() + got.token_begin[t + 1]);
    ASSERT_EQ(run_t, mine) << what << " row " << t;
  }
  // Statistics.
  const T* tail = got.stats.data() + 2 * E;
  EXPECT_EQ(static_cast<int64_t>(tail[static_cast<int>(RouteStat::dropped)]), want.dropped) << what;
  int64_t filled = 0;
  for (int64_t e = 0; e < E; ++e) {
    int64_t kept = 0;
    for (int64_t k = e * s.groups * s.capacity; k < (e + 1) * s.groups * s.capacity; ++k) kept += want.slot_row[k] >= 0;
    EXPECT_EQ(static_cast<int64_t>(got.stats[e]), kept) << what << " expert " << e;
    filled += kept;
  }
  const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-12;
  if (s.rule == RouteRule::top1 || s.rule == RouteRule::top2) {
    EXPECT_NEAR(tail[static_cast<int>(RouteStat::aux_sum)], want.balance, tol * s.groups) << what;
    for (int64_t g = 0; g < s.groups; ++g)
      for (int64_t e = 0; e < E; ++e)
        EXPECT_NEAR(static_cast<double>(got.first_count[g * E + e]) / static_cast<double>(s.members),
                    want.routes[g].first_fraction[e], 1e-12) << what;
  }
  double entropy = 0, lse2 = 0, gates = 0;
  int64_t hist[5] = {0, 0, 0, 0, 0};
  for (const GroupRoute& r : want.routes) experts_per_token_histogram(r, s.members, hist);
  for (int64_t t = 0; t < N; ++t) {
    double m = -1e300, sum = 0;
    for (int64_t e = 0; e < E; ++e) m = std::max(m, static_cast<double>(z[t * E + e]));
    for (int64_t e = 0; e < E; ++e) sum += std::exp(static_cast<double>(z[t * E + e]) - m);
    const double l = m + std::log(sum);
    EXPECT_NEAR(got.lse[t], l, tol * (1 + std::fabs(l))) << what;
    lse2 += l * l;
    for (int64_t e = 0; e < E; ++e)
      if (p[t * E + e] > 0) entropy -= p[t * E + e] * std::log(static_cast<double>(p[t * E + e]));
  }
  for (double g : want.slot_gate) gates += g;
  EXPECT_NEAR(tail[static_cast<int>(RouteStat::entropy_sum)], entropy, tol * N) << what;
  EXPECT_NEAR(tail[static_cast<int>(RouteStat::lse2_sum)], lse2, tol * N * (1 + lse2 / N)) << what;
  EXPECT_NEAR(tail[static_cast<int>(RouteStat::gate_sum)], gates, tol * (1 + filled)) << what;
  for (int v = 0; v < 5; ++v)
    EXPECT_EQ(static_cast<int64_t>(tail[static_cast<int>(RouteStat::histogram) + v]), hist[v]) << what << " bin " << v;
  if (s.rule == RouteRule::expert_choice)  // threshold samples: Σ_g the C-th largest of p[:, e]
    for (int64_t e = 0; e < E; ++e) {
      double theta = 0;
      for (int64_t g = 0; g < s.groups; ++g) theta += want.slot_gate[(e * s.groups + g) * s.capacity + s.capacity - 1];
      EXPECT_NEAR(got.stats[E + e], theta, tol * s.groups) << what;
    }
}

struct Layout {
  int64_t groups, members;
  bool by_position;
};
const Layout kLayouts[] = {{1, 1, false}, {1, 7, false}, {3, 16, false}, {5, 4, true}, {2, 65, false}, {8, 130, true}};
const int64_t kExperts[] = {2, 3, 8, 16};

RouteSpec spec(RouteRule rule, const Layout& l, int64_t E, int64_t C) {
  RouteSpec s;
  s.rule = rule;
  s.groups = l.groups, s.members = l.members, s.seq = l.by_position ? l.groups : 0;
  s.experts = E, s.capacity = C;
  s.seed = 1234, s.stream = 99, s.first_token = 40;
  return s;
}

TEST(SY_ROUTE_SUITE, SwitchTop1PlansEqualTheHostRule) {
  SY_ROUTE_BACKEND_NEEDS();
  for (const Layout& l : kLayouts)
    for (int64_t E : kExperts)
      for (double factor : {0.5, 1.0, 2.0, -1.0})
        for (bool ties : {false, true}) {
          const int64_t C = token_choice_capacity(factor, 1, l.members, E);
          expect_plan<float>(spec(RouteRule::top1, l, E, C), ties, 7 + E);
          if (!SY_TEST_CUDA) expect_plan<double>(spec(RouteRule::top1, l, E, C), ties, 7 + E);
        }
}

TEST(SY_ROUTE_SUITE, GshardTop2PlansEqualTheHostRuleWithAndWithoutTheRandomSecond) {
  SY_ROUTE_BACKEND_NEEDS();
  for (const Layout& l : kLayouts)
    for (int64_t E : kExperts)
      for (double factor : {0.5, 1.25, -1.0})
        for (bool random : {false, true})
          for (bool ties : {false, true}) {
            RouteSpec s = spec(RouteRule::top2, l, E, token_choice_capacity(factor, 2, l.members, E));
            s.second_random = random;
            expect_plan<float>(s, ties, 3 + E);
            if (!SY_TEST_CUDA) expect_plan<double>(s, ties, 3 + E);
          }
}

// On the GPU the noise's log and cos may differ from the host's in the last bit,
// so there the scores, and the gates, agree to rounding, not bit for bit: the
// CUDA run of this test checks the plan's pairs (inputs away from ties) and the
// gates within 1e-6 — see expect_plan's tolerance switch.
TEST(SY_ROUTE_SUITE, NoisyTopkPlansEqualTheHostRuleWithAndWithoutNoise) {
  SY_ROUTE_BACKEND_NEEDS();
  for (const Layout& l : kLayouts)
    for (int64_t E : kExperts)
      for (int64_t k : {int64_t{1}, int64_t{2}, int64_t{3}})
        for (bool noisy : {false, true}) {
          if (k > E) continue;
          RouteSpec s = spec(RouteRule::topk, l, E, token_choice_capacity(1.0, k, l.members, E));
          s.top_k = k, s.noisy = noisy, s.noise_stream = 77;
          s.w_importance = 0.1, s.w_load = 0.2;
          expect_plan<float>(s, false, 13 + E);
          if (!SY_TEST_CUDA) expect_plan<double>(s, !noisy, 13 + E);
        }
}

TEST(SY_ROUTE_SUITE, ExpertChoicePlansEqualTheHostRule) {
  SY_ROUTE_BACKEND_NEEDS();
  for (const Layout& l : kLayouts)
    for (int64_t E : kExperts)
      for (double c : {0.5, 1.0, 2.0, 3.0})
        for (bool ties : {false, true}) {
          const int64_t C = expert_choice_capacity(c, l.members, E);
          expect_plan<float>(spec(RouteRule::expert_choice, l, E, C), ties, 5 + E);
          if (!SY_TEST_CUDA) expect_plan<double>(spec(RouteRule::expert_choice, l, E, C), ties, 5 + E);
        }
}

// route_backward against the host's formulas: ∂gate/∂p per rule (switch and expert
// choice: 1 on its own entry; GShard: the pair's quotient rule), plus the balance
// loss's E·f_e/S, through the softmax, plus the z-loss.
TEST(SY_ROUTE_SUITE, BackwardEqualsTheHostGradient) {
  SY_ROUTE_BACKEND_NEEDS();
  for (RouteRule rule : {RouteRule::top1, RouteRule::top2, RouteRule::expert_choice})
    for (const Layout& l : {Layout{3, 16, false}, Layout{5, 4, true}}) {
      const int64_t E = 4;
      const int64_t C = rule == RouteRule::expert_choice ? expert_choice_capacity(2.0, l.members, E)
                                                         : token_choice_capacity(1.0, rule == RouteRule::top2 ? 2 : 1, l.members, E);
      RouteSpec s = spec(rule, l, E, C);
      s.second_random = rule == RouteRule::top2;
      using T = float;
      std::vector<T> z, p;
      make_inputs<T>(s.rows(), E, 21, false, z, p);
      std::vector<T> dgate(s.slots());
      const std::vector<double> r = test::random_vec(s.slots(), 5, 1.0);
      for (int64_t k = 0; k < s.slots(); ++k) dgate[k] = static_cast<T>(r[k]);
      const double balance_scale = rule == RouteRule::expert_choice ? 0.0 : 0.3, z_scale = 0.05;
      auto ops = backend();
      const Result<T> got = run(*ops, s, z, p, &dgate, balance_scale, z_scale);
      const Oracle want = oracle(s, p);
      const int64_t N = s.rows();
      std::vector<double> dp(N * E, 0.0);
      for (int64_t k = 0; k < s.slots(); ++k) {
        const int64_t t = want.slot_row[k], e = k / (s.groups * s.capacity);
        if (t < 0) continue;
        const T* row = p.data() + t * E;
        if (rule != RouteRule::top2) {
          dp[t * E + e] += dgate[k];
          continue;
        }
        int32_t e1 = 0;
        for (int64_t j = 1; j < E; ++j) e1 = row[j] > row[e1] ? j : e1;
        int32_t e2 = e1 == 0 ? 1 : 0;
        for (int64_t j = 0; j < E; ++j) e2 = j != e1 && row[j] > row[e2] ? j : e2;
        const int64_t other = e == e1 ? e2 : e1;
        const double sum = static_cast<double>(row[e1]) + row[e2];
        dp[t * E + e] += dgate[k] * row[other] / (sum * sum);
        dp[t * E + other] -= dgate[k] * row[e] / (sum * sum);
      }
      for (int64_t g = 0; g < s.groups; ++g)
        for (int64_t m = 0; m < s.members; ++m)
          for (int64_t e = 0; e < E; ++e)
            if (balance_scale != 0)
              dp[row_of(s, g, m) * E + e] += balance_scale * E * want.routes[g].first_fraction[e] / s.members;
      for (int64_t t = 0; t < N; ++t) {
        double dot = 0, m = -1e300, sum = 0;
        for (int64_t e = 0; e < E; ++e) dot += p[t * E + e] * dp[t * E + e];
        for (int64_t e = 0; e < E; ++e) m = std::max(m, static_cast<double>(z[t * E + e]));
        for (int64_t e = 0; e < E; ++e) sum += std::exp(z[t * E + e] - m);
        const double lse = m + std::log(sum);
        for (int64_t e = 0; e < E; ++e) {
          const double want_dz = p[t * E + e] * (dp[t * E + e] - dot) + z_scale * 2 * lse * p[t * E + e] / N;
          EXPECT_NEAR(got.dlogits[t * E + e], want_dz, 1e-5 * (1 + std::fabs(want_dz)))
              << describe(s) << " row " << t << " expert " << e;
        }
      }
    }
}

#if !SY_TEST_CUDA
// route_backward against finite differences in double (the CPU backend): the
// objective L = Σ_k c_k·gate_k + aux_scale·(Σ over groups of the auxiliary loss) +
// z_scale·Σ_t lse_t² / N, as route_plan computes it (probabilities = softmax of the
// logits), differentiated in the logits and, for noisy top-k, in the noise logits.
// Inputs without ties, so a step of 1e-6 keeps every selection.
TEST(SY_ROUTE_SUITE, BackwardMatchesFiniteDifferences) {
  SY_ROUTE_BACKEND_NEEDS();
  auto ops = backend();
  for (RouteRule rule : {RouteRule::top1, RouteRule::top2, RouteRule::topk, RouteRule::expert_choice})
    for (const Layout& l : {Layout{3, 16, false}, Layout{5, 4, true}}) {
      const int64_t E = 4, k = rule == RouteRule::top2 || rule == RouteRule::topk ? 2 : 1;
      const int64_t C = rule == RouteRule::expert_choice ? expert_choice_capacity(2.0, l.members, E)
                                                         : token_choice_capacity(1.0, k, l.members, E);
      RouteSpec s = spec(rule, l, E, C);
      s.second_random = rule == RouteRule::top2;
      s.top_k = k, s.noisy = rule == RouteRule::topk, s.noise_stream = 77, s.w_importance = 0.3, s.w_load = 0.4;
      const int64_t N = s.rows();
      std::vector<double> z, p, nz, unused;
      make_inputs<double>(N, E, 31, false, z, p);
      make_inputs<double>(N, E, 32, false, nz, unused);
      const std::vector<double> c = test::random_vec(s.slots(), 33, 1.0);
      const double aux_scale = rule == RouteRule::expert_choice ? 0.0 : 0.2, z_scale = 0.05;
      const std::vector<double>* noise = s.noisy ? &nz : nullptr;
      const Result<double> got = run<double>(*ops, s, z, p, &c, aux_scale, z_scale, noise);
      auto objective = [&](const std::vector<double>& zz, const std::vector<double>& nn) {
        std::vector<double> pp;
        softmax_rows(zz, N, E, pp);
        const Result<double> r = run<double>(*ops, s, zz, pp, nullptr, 0, 0, s.noisy ? &nn : nullptr);
        double L = 0;
        for (int64_t q = 0; q < s.slots(); ++q) L += c[q] * r.slot_gate[q];
        const double* tail = r.stats.data() + 2 * E;
        return L + aux_scale * tail[static_cast<int>(RouteStat::aux_sum)] +
               z_scale * tail[static_cast<int>(RouteStat::lse2_sum)] / static_cast<double>(N);
      };
      const double h = 1e-6;
      for (int64_t i = 0; i < N * E; ++i) {
        std::vector<double> up = z, down = z;
        up[i] += h, down[i] -= h;
        const double fd = (objective(up, nz) - objective(down, nz)) / (2 * h);
        EXPECT_NEAR(got.dlogits[i], fd, 1e-7 + 1e-6 * std::fabs(fd)) << describe(s) << " logit " << i;
        if (!s.noisy) continue;
        up = nz, down = nz;
        up[i] += h, down[i] -= h;
        const double fdn = (objective(z, up) - objective(z, down)) / (2 * h);
        EXPECT_NEAR(got.dnoise[i], fdn, 1e-7 + 1e-6 * std::fabs(fdn)) << describe(s) << " noise logit " << i;
      }
    }
}
#endif

// The router input's jitter: the host router's multipliers (RngStream::uniform_double
// at (first_token + row)·width + column), applied in double and rounded once.
TEST(SY_ROUTE_SUITE, JitterRowsAreTheHostMultipliers) {
  SY_ROUTE_BACKEND_NEEDS();
  auto ops = backend();
  Arena arena(*ops);
  const int64_t N = 37, D = 29;
  const JitterSpec js{99, 1234, 1000, 0.05};
  const std::vector<double> xd = test::random_vec(N * D, 3, 1.0);
  const std::vector<float> x(xd.begin(), xd.end());
  Tensor in = arena.make(DType::f32, {N, D}), out = arena.make(DType::f32, {N, D});
  ops->from_host(in, x.data());
  ops->jitter_rows(out, in, js);
  ops->jitter_rows(in, in, js);  // in place, as the backward does
  std::vector<float> got(N * D), again(N * D);
  ops->to_host(got.data(), out);
  ops->to_host(again.data(), in);
  const RngStream rng{js.seed, js.stream};
  for (int64_t i = 0; i < N * D; ++i) {
    const double m = 1.0 - js.eps + 2.0 * js.eps * rng.uniform_double(static_cast<uint64_t>((js.first_token + i / D) * D + i % D));
    ASSERT_EQ(got[i], static_cast<float>(static_cast<double>(x[i]) * m)) << i;
    ASSERT_EQ(again[i], got[i]) << i;
  }
}

TEST(SY_ROUTE_SUITE, RunsAreBitIdentical) {
  SY_ROUTE_BACKEND_NEEDS();
  RouteSpec s = spec(RouteRule::top2, Layout{4, 130, false}, 16, 20);
  s.second_random = true;
  std::vector<float> z, p;
  make_inputs<float>(s.rows(), s.experts, 8, true, z, p);
  auto ops = backend();
  const Result<float> a = run(*ops, s, z, p), b = run(*ops, s, z, p);
  EXPECT_EQ(a.slot_row, b.slot_row);
  EXPECT_EQ(a.slot_gate, b.slot_gate);
  EXPECT_EQ(a.token_slots, b.token_slots);
  EXPECT_EQ(a.stats, b.stats);
}

}  // namespace
}  // namespace sy
