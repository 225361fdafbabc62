// The routing rules of docs/routing.md: its hand-checked vectors exactly, and their
// properties on random inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/rng.h"
#include "moe/routing.h"

namespace sy {
namespace {

// docs/routing.md's group: S = 4, E = 2.
const std::vector<double> kP = {.5, .5, .5, .5, .9, .1, .1, .9};

std::vector<std::pair<int, int>> pairs(const GroupRoute& r) {
  std::vector<std::pair<int, int>> v;
  for (const Choice& c : r.choices) v.push_back({c.expert, c.token});
  return v;
}

TEST(RoutingHandVectors, ExpertChoiceC1) {
  const int64_t C = expert_choice_capacity(1.0, 4, 2);
  EXPECT_EQ(C, 2);
  const GroupRoute r = route_expert_choice(kP.data(), 4, 2, C);
  // Expert 0 takes t2, t0 (t0 ties t1: lower index); expert 1 takes t3, t0.
  EXPECT_EQ(pairs(r), (std::vector<std::pair<int, int>>{{0, 2}, {0, 0}, {1, 3}, {1, 0}}));
  EXPECT_DOUBLE_EQ(r.choices[0].gate, .9);
  EXPECT_DOUBLE_EQ(r.choices[1].gate, .5);
  EXPECT_DOUBLE_EQ(r.choices[2].gate, .9);
  EXPECT_DOUBLE_EQ(r.choices[3].gate, .5);
  int64_t hist[5] = {0, 0, 0, 0, 0};
  experts_per_token_histogram(r, 4, hist);
  EXPECT_EQ(std::vector<int64_t>(hist, hist + 5), (std::vector<int64_t>{1, 2, 1, 0, 0}));  // t1 0, t2 1, t3 1, t0 2
}

TEST(RoutingHandVectors, SwitchFactor1) {
  const int64_t C = token_choice_capacity(1.0, 1, 4, 2);
  EXPECT_EQ(C, 2);
  const GroupRoute r = route_switch_top1(kP.data(), 4, 2, C);
  // argmax: t0, t1, t2 → e0 (ties → lower index), t3 → e1; t2 arrives at a full e0.
  EXPECT_EQ(pairs(r), (std::vector<std::pair<int, int>>{{0, 0}, {0, 1}, {1, 3}}));
  EXPECT_EQ(r.dropped, 1);
  EXPECT_NEAR(r.first_fraction[0], 0.75, 1e-15);
  EXPECT_NEAR(r.first_fraction[1], 0.25, 1e-15);
  EXPECT_NEAR(r.aux, 1.0, 1e-12);  // 2·(3/4·.5 + 1/4·.5)
}

TEST(RoutingHandVectors, GshardFactor1PolicyAll) {
  const int64_t C = token_choice_capacity(1.0, 2, 4, 2);
  EXPECT_EQ(C, 4);
  const GroupRoute r = route_gshard_top2(kP.data(), 4, 2, C, nullptr);
  EXPECT_EQ(r.dropped, 0);
  EXPECT_EQ(r.choices.size(), 8u);
  for (const Choice& c : r.choices)
    if (c.token == 2) {
      EXPECT_NEAR(c.gate, c.expert == 0 ? .9 : .1, 1e-12);
    }
}

TEST(AuxLosses, CoefficientOfVariationSquaredByHand) {
  // [1, 3]: mean 2, population variance 1 → 1/4; equal loads → 0; all zero → 0.
  EXPECT_NEAR(cv_squared({1.0, 3.0}), 0.25, 1e-9);  // (the +1e-10 in the denominator)
  EXPECT_NEAR(cv_squared({2.0, 2.0, 2.0}), 0.0, 1e-15);
  EXPECT_EQ(cv_squared({0.0, 0.0}), 0.0);
  // [0, 4, 2]: mean 2, variance 8/3 → (8/3)/4 = 2/3; gradient by hand at e = 1:
  // 2(4−2)/3/4 − (8/3)·2·2/3/16 = 1/3 − 2/9 = 1/9.
  std::vector<double> g;
  EXPECT_NEAR(cv_squared({0.0, 4.0, 2.0}, &g), 2.0 / 3.0, 1e-9);
  EXPECT_NEAR(g[1], 1.0 / 9.0, 1e-9);
}

TEST(Capacity, FormulasAndClamps) {
  EXPECT_EQ(token_choice_capacity(1.25, 1, 100, 8), 16);  // ceil(15.625)
  EXPECT_EQ(token_choice_capacity(0.0, 2, 100, 8), 100);  // dropless
  EXPECT_EQ(token_choice_capacity(0.001, 1, 100, 8), 1);  // clamped to ≥ 1
  EXPECT_EQ(expert_choice_capacity(2.0, 100, 8), 25);
  EXPECT_EQ(expert_choice_capacity(100.0, 10, 2), 10);    // clamped to ≤ S
  // gshard_top2 at factor 1 and expert choice at c = 2 fill the same 2S/E slots.
  EXPECT_EQ(token_choice_capacity(1.0, 2, 64, 8), expert_choice_capacity(2.0, 64, 8));
}

std::vector<double> random_probs(int64_t S, int64_t E, uint64_t seed) {
  std::vector<double> p(static_cast<size_t>(S * E));
  const RngStream r{seed, 5};
  for (int64_t t = 0; t < S; ++t) {
    double z = 0;
    for (int64_t e = 0; e < E; ++e) z += p[t * E + e] = std::exp(2.0 * r.normal(t * E + e));
    for (int64_t e = 0; e < E; ++e) p[t * E + e] /= z;
  }
  return p;
}

TEST(RoutingProperties, ExpertChoiceFillsExactlyCSlots) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const int64_t S = 37, E = 6, C = expert_choice_capacity(2.0, S, E);
    const auto p = random_probs(S, E, seed);
    const GroupRoute r = route_expert_choice(p.data(), S, E, C);
    std::map<int, int> per_expert;
    for (const Choice& c : r.choices) ++per_expert[c.expert];
    for (int e = 0; e < E; ++e) EXPECT_EQ(per_expert[e], C);
    // Each expert's choices are its C highest scores.
    for (const Choice& c : r.choices) {
      int64_t higher = 0;
      for (int64_t t = 0; t < S; ++t) higher += p[t * E + c.expert] > c.gate;
      EXPECT_LT(higher, C);
    }
  }
}

TEST(RoutingProperties, CappedExpertChoiceRespectsTheCap) {
  for (int64_t b : {1, 2, 3}) {
    const int64_t S = 24, E = 4, C = expert_choice_capacity(2.0, S, E);
    const auto p = random_probs(S, E, 10 + b);
    const GroupRoute r = route_expert_choice_capped(p.data(), S, E, C, b);
    std::vector<int> per_token(S, 0);
    std::map<int, int> per_expert;
    for (const Choice& c : r.choices) {
      ++per_token[c.token];
      ++per_expert[c.expert];
      EXPECT_DOUBLE_EQ(c.gate, p[c.token * E + c.expert]);  // combine weights stay p
    }
    for (int n : per_token) EXPECT_LE(n, b);
    for (int e = 0; e < E; ++e) EXPECT_LE(per_expert[e], C);
    EXPECT_EQ(static_cast<int64_t>(r.choices.size()) + r.empty_slots, E * C);
    // The solver meets its constraints: columns sum to at most b, and rows to C
    // where that is possible at all (E·C ≤ b·S; b = 1 here is not: slots stay empty).
    const auto A = entropic_assignment(p.data(), S, E, C, b);
    for (int64_t t = 0; t < S; ++t) {
      double col = 0;
      for (int64_t e = 0; e < E; ++e) col += A[t * E + e];
      EXPECT_LE(col, b + 1e-2);
    }
    if (E * C > b * S) {
      EXPECT_GE(r.empty_slots, E * C - b * S);
      continue;
    }
    for (int64_t e = 0; e < E; ++e) {
      double row = 0;
      for (int64_t t = 0; t < S; ++t) row += A[t * E + e];
      EXPECT_NEAR(row, C, 1e-2) << "b " << b << " expert " << e;
    }
  }
}

// The pick of capped expert choice fills every slot whenever an assignment exists
// (E·C ≤ b·S here), never gives a token more than b experts, and where none exists
// fills as many as any assignment could (b·S).
TEST(RoutingProperties, CappedExpertChoiceFillsEverySlotWhenAnAssignmentExists) {
  struct Shape {
    int64_t S, E, b;
    double c;
  };
  int groups = 0;
  for (const Shape& sh : {Shape{16, 16, 2, 2.0}, Shape{64, 16, 2, 2.0}, Shape{24, 4, 2, 2.0},
                          Shape{37, 6, 3, 2.0}, Shape{64, 8, 1, 1.0}, Shape{30, 5, 1, 2.0},
                          Shape{20, 8, 1, 2.0}})
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      const int64_t S = sh.S, E = sh.E, b = sh.b, C = expert_choice_capacity(sh.c, S, E);
      const auto p = random_probs(S, E, 100 * seed + static_cast<uint64_t>(S));
      const GroupRoute r = route_expert_choice_capped(p.data(), S, E, C, b);
      std::vector<int64_t> per_token(S, 0), per_expert(E, 0);
      std::set<std::pair<int, int>> seen;
      for (const Choice& c : r.choices) {
        ++per_token[c.token];
        ++per_expert[c.expert];
        EXPECT_TRUE(seen.insert({c.token, c.expert}).second) << "a pair picked twice";
      }
      for (int64_t n : per_token) EXPECT_LE(n, b);
      const int64_t possible = std::min(E * C, std::min(b, E) * S);
      EXPECT_EQ(static_cast<int64_t>(r.choices.size()), possible)
          << "S " << S << " E " << E << " C " << C << " b " << b << " seed " << seed;
      EXPECT_EQ(r.empty_slots, E * C - possible);
      if (E * C <= b * S) {
        for (int64_t e = 0; e < E; ++e) EXPECT_EQ(per_expert[e], C);
      }
      ++groups;
    }
  EXPECT_EQ(groups, 42);
}

// A case greedy alone gets wrong: S = 2, E = 4, C = 1, b = 2. In descending A both
// tokens first go to experts 0 and 1; expert 2 then takes one of them, and expert 3
// finds both tokens full — an augmenting path moves a token from expert 2 or 1.
TEST(RoutingProperties, CappedExpertChoiceRepairsWhatGreedyLeavesEmpty) {
  const std::vector<double> p = {.40, .35, .15, .10, .45, .30, .15, .10};
  const GroupRoute r = route_expert_choice_capped(p.data(), 2, 4, 1, 2);
  EXPECT_EQ(r.empty_slots, 0);
  ASSERT_EQ(r.choices.size(), 4u);
  std::vector<int> per_token(2, 0);
  for (int e = 0; e < 4; ++e) EXPECT_EQ(r.choices[e].expert, e);  // expert-major, one each
  for (const Choice& c : r.choices) ++per_token[c.token];
  EXPECT_EQ(per_token, (std::vector<int>{2, 2}));
}

// The multiplier solver's stated tolerance (docs/routing.md): rows within 1e-3 of C
// when the caps leave slack, and within one slot where they are tight (E·C = b·S,
// every token at exactly b): its 100 alternating iterations converge slowly there.
// The pick above does not depend on it: it fills every slot either way.
TEST(RoutingProperties, CappedSolverMeetsItsStatedTolerance) {
  struct Shape {
    int64_t S, E, b;
    double tol;
  };
  for (const Shape& sh : {Shape{64, 8, 3, 1e-3}, Shape{24, 4, 3, 1e-3}, Shape{64, 16, 2, 1.0},
                          Shape{256, 16, 2, 1.0}})
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      const int64_t C = expert_choice_capacity(2.0, sh.S, sh.E);
      const auto p = random_probs(sh.S, sh.E, seed);
      const auto A = entropic_assignment(p.data(), sh.S, sh.E, C, sh.b);
      for (int64_t e = 0; e < sh.E; ++e) {
        double row = 0;
        for (int64_t t = 0; t < sh.S; ++t) row += A[t * sh.E + e];
        EXPECT_NEAR(row, static_cast<double>(C), sh.tol) << "S " << sh.S << " b " << sh.b;
      }
      for (int64_t t = 0; t < sh.S; ++t) {
        double col = 0;
        for (int64_t e = 0; e < sh.E; ++e) col += A[t * sh.E + e];
        EXPECT_LE(col, static_cast<double>(sh.b) + 1e-2);
      }
    }
}

TEST(RoutingProperties, SwitchRespectsCapacityAndDropsInTokenOrder) {
  const int64_t S = 50, E = 4;
  const auto p = random_probs(S, E, 21);
  const int64_t C = token_choice_capacity(1.0, 1, S, E);
  const GroupRoute r = route_switch_top1(p.data(), S, E, C);
  std::map<int, std::vector<int>> kept;
  for (const Choice& c : r.choices) kept[c.expert].push_back(c.token);
  int64_t dropped = 0;
  for (int e = 0; e < E; ++e) {
    std::vector<int> wanting;  // tokens whose argmax is e, in order
    for (int64_t t = 0; t < S; ++t)
      if (std::max_element(p.begin() + t * E, p.begin() + (t + 1) * E) - (p.begin() + t * E) == e)
        wanting.push_back(static_cast<int>(t));
    const size_t n = std::min<size_t>(wanting.size(), static_cast<size_t>(C));
    EXPECT_EQ(kept[e], std::vector<int>(wanting.begin(), wanting.begin() + n)) << "expert " << e;
    dropped += static_cast<int64_t>(wanting.size() - n);
  }
  EXPECT_EQ(r.dropped, dropped);
  EXPECT_GT(dropped, 0);  // the test must exercise dropping
}

TEST(RoutingProperties, GshardPlacesFirstChoicesBeforeSecond) {
  const int64_t S = 40, E = 4;
  const auto p = random_probs(S, E, 31);
  const GroupRoute r = route_gshard_top2(p.data(), S, E, token_choice_capacity(0.75, 2, S, E), nullptr);
  EXPECT_GT(r.dropped, 0);
  for (int e = 0; e < E; ++e) {
    bool seen_second = false;
    for (const Choice& c : r.choices) {
      if (c.expert != e) continue;
      const double* row = p.data() + c.token * E;
      const bool first = std::max_element(row, row + E) - row == e;
      EXPECT_FALSE(first && seen_second) << "a first choice after a second one in expert " << e;
      seen_second |= !first;
    }
  }
  // Gates of a token's pair sum to 1 when both were kept.
  std::map<int, double> sum;
  std::map<int, int> count;
  for (const Choice& c : r.choices) sum[c.token] += c.gate, ++count[c.token];
  for (auto& [t, s] : sum)
    if (count[t] == 2) {
      EXPECT_NEAR(s, 1.0, 1e-12);
    }
}

TEST(RoutingProperties, DroplessDropsNothing) {
  const int64_t S = 33, E = 5;
  const auto p = random_probs(S, E, 41);
  EXPECT_EQ(route_switch_top1(p.data(), S, E, token_choice_capacity(0, 1, S, E)).dropped, 0);
  EXPECT_EQ(route_gshard_top2(p.data(), S, E, token_choice_capacity(-1, 2, S, E), nullptr).choices.size(),
            static_cast<size_t>(2 * S));
  EXPECT_EQ(route_noisy_topk(p.data(), S, E, 3, token_choice_capacity(0, 3, S, E)).dropped, 0);
}

TEST(RoutingProperties, NoisyTopKGatesSumToOneOverK) {
  const int64_t S = 20, E = 6, k = 3;
  const auto h = random_probs(S, E, 51);
  std::vector<int32_t> experts;
  std::vector<double> gates;
  const GroupRoute r = route_noisy_topk(h.data(), S, E, k, S, &experts, &gates);
  std::map<int, double> sum;
  std::map<int, std::set<int>> distinct;
  for (const Choice& c : r.choices) sum[c.token] += c.gate, distinct[c.token].insert(c.expert);
  for (int64_t t = 0; t < S; ++t) {
    EXPECT_NEAR(sum[t], 1.0, 1e-12);
    EXPECT_EQ(distinct[t].size(), static_cast<size_t>(k));
  }
}

}  // namespace
}  // namespace sy
