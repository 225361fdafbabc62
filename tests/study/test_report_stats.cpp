// The report's arithmetic, on numbers worked out by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"
#include "moe/routing.h"
#include "study/report_stats.h"

namespace sy {
namespace {

TEST(ReportStats, MeanAndSampleStd) {
  const MeanStd m = mean_std({1, 2, 3, 4});
  EXPECT_EQ(m.n, 4);
  EXPECT_DOUBLE_EQ(m.mean, 2.5);
  EXPECT_NEAR(m.std, std::sqrt(5.0 / 3.0), 1e-12);  // Σ(x−2.5)² = 5, over n−1 = 3
  const MeanStd one = mean_std({7});
  EXPECT_EQ(one.n, 1);
  EXPECT_EQ(one.std, 0);
  EXPECT_EQ(mean_std({}).n, 0);
}

TEST(ReportStats, StepsToTargetInterpolatesBetweenEvaluations) {
  const Curve c = {{10, 300}, {20, 200}, {30, 150}, {40, 140}};
  EXPECT_DOUBLE_EQ(steps_to_target(c, 180), 24);   // 20 + 10·(200−180)/(200−150)
  EXPECT_DOUBLE_EQ(steps_to_target(c, 200), 20);   // reached exactly at an evaluation
  EXPECT_DOUBLE_EQ(steps_to_target(c, 140), 40);
  EXPECT_DOUBLE_EQ(steps_to_target(c, 139.9), -1);  // never
  EXPECT_DOUBLE_EQ(steps_to_target(c, 500), 10);    // already below at the first evaluation
  EXPECT_DOUBLE_EQ(steps_to_target({}, 100), -1);
}

TEST(ReportStats, CallsADifferenceOnlyBeyondTwoSigma) {
  const MeanStd a{100, 1, 3}, b{103, 1, 3}, c{101.5, 1, 3};
  const Comparison ab = compare_arms(a, b);
  EXPECT_DOUBLE_EQ(ab.diff, -3);
  EXPECT_DOUBLE_EQ(ab.sigma, 1);
  EXPECT_TRUE(ab.distinguishable);  // 3 > 2·1
  EXPECT_FALSE(compare_arms(a, c).distinguishable);  // 1.5 < 2
  // pooled σ: sqrt((1² + 3²)/2) = √5 ≈ 2.236; a gap of 4 < 2√5 is not called
  EXPECT_FALSE(compare_arms(MeanStd{100, 1, 3}, MeanStd{104, 3, 3}).distinguishable);
  EXPECT_TRUE(compare_arms(MeanStd{100, 1, 3}, MeanStd{104.6, 3, 3}).distinguishable);
  // one seed: never called, however large the gap
  EXPECT_FALSE(compare_arms(MeanStd{100, 0, 1}, MeanStd{200, 0, 3}).distinguishable);
}

// Paired by seed: a shared per-seed offset (the data order) cancels.
TEST(ReportStats, PairedComparisonCancelsWhatSeedsShare) {
  const std::vector<std::pair<int64_t, double>> a = {{1, 200}, {2, 250}, {3, 300}}, b = {{3, 303}, {1, 203}, {2, 252}};
  const PairedComparison c = compare_paired(a, b);  // differences −3, −2, −3
  EXPECT_EQ(c.diff.n, 3);
  EXPECT_NEAR(c.diff.mean, -8.0 / 3, 1e-12);
  EXPECT_NEAR(c.diff.std, std::sqrt(1.0 / 3), 1e-12);
  EXPECT_TRUE(c.distinguishable);  // 2.67 > 2·0.577, while the unpaired spread (50) hides it
  EXPECT_FALSE(compare_arms(mean_std({200, 250, 300}), mean_std({203, 252, 303})).distinguishable);
  EXPECT_FALSE(compare_paired(a, {{1, 100}, {9, 1}}).distinguishable);  // one seed pairs up
  EXPECT_EQ(compare_paired(a, {{1, 100}, {9, 1}}).diff.n, 1);
}

TEST(ReportStats, RandomRouterHistogramIsBinomial) {
  // E = 8, c = 2, S = 16: C = 4, p = 1/4; P(0) = (3/4)^8, P(1) = 8·(1/4)(3/4)^7.
  const auto h = random_router_histogram(8, 2.0, 16);
  EXPECT_NEAR(h[0], std::pow(0.75, 8), 1e-12);
  EXPECT_NEAR(h[1], 8 * 0.25 * std::pow(0.75, 7), 1e-12);
  EXPECT_NEAR(h[2], 28 * std::pow(0.25, 2) * std::pow(0.75, 6), 1e-12);
  double sum = 0;
  for (double v : h) sum += v;
  EXPECT_NEAR(sum, 1, 1e-12);
  // C rounds up: c = 0.5, S = 10, E = 8 → C = ⌈0.625⌉ = 1, p = 0.1
  EXPECT_NEAR(random_router_histogram(8, 0.5, 10)[0], std::pow(0.9, 8), 1e-12);
}

TEST(ReportStats, RandomRouterTendsToPoissonAsExpertsGrow) {
  const double c = 2;
  EXPECT_NEAR(poisson_histogram(c)[0], std::exp(-c), 1e-15);
  double last = 1;
  for (int64_t E : {8, 32, 128, 1024}) {
    const int64_t S = E * 1000;  // C/S = c/E exactly
    const double err = std::abs(random_router_histogram(E, c, S)[0] - std::exp(-c));
    EXPECT_LT(err, last) << "E = " << E;
    last = err;
  }
  EXPECT_LT(last, c * c * std::exp(-c) / 1024);  // first-order error: (c²/2E)·e^-c
  const auto h = random_router_histogram(1024, c, 1024000), p = poisson_histogram(c);
  for (int b = 0; b < 5; ++b) EXPECT_NEAR(h[b], p[b], 1e-3) << "bin " << b;
}

// The closed form describes the real router: expert choice on random scores,
// counted with the router's own histogram.
TEST(ReportStats, RandomRouterMatchesExpertChoiceOnRandomScores) {
  const int64_t S = 64, E = 8, groups = 2000;
  const double c = 2;
  const int64_t C = expert_choice_capacity(c, S, E);
  const RngStream rng{42, 3};
  int64_t hist[5] = {0, 0, 0, 0, 0};
  std::vector<float> p(static_cast<size_t>(S * E));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t i = 0; i < S * E; ++i) p[i] = rng.uniform(static_cast<uint64_t>(g * S * E + i));
    experts_per_token_histogram(route_expert_choice(p.data(), S, E, C), S, hist);
  }
  const auto want = random_router_histogram(E, c, S);
  for (int b = 0; b < 5; ++b)
    EXPECT_NEAR(static_cast<double>(hist[b]) / (S * groups), want[b], 0.01) << "bin " << b;
}

}  // namespace
}  // namespace sy
