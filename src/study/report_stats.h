#pragma once
// The arithmetic of `switchyard report`, kept apart from files and formatting so
// tests can check it on numbers worked out by hand.
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace sy {

struct MeanStd {
  double mean = 0;
  double std = 0;  // sample standard deviation (n - 1); 0 when n < 2
  int n = 0;
};
MeanStd mean_std(const std::vector<double>& x);

// A validation curve: (step, perplexity) in step order.
using Curve = std::vector<std::pair<double, double>>;

// The first step at which the curve reaches `target` (perplexity ≤ target),
// interpolated linearly between the evaluation before and the one that reached
// it; -1 when it never does. A curve that starts at or below target: its first step.
double steps_to_target(const Curve& curve, double target);

// The report's rule for calling a difference: both arms have at least two seeds
// and |mean_a − mean_b| > 2·σ, σ the pooled seed-to-seed standard deviation
// sqrt((σ_a² + σ_b²) / 2).
struct Comparison {
  double diff = 0;   // mean_a − mean_b
  double sigma = 0;  // pooled seed-to-seed standard deviation
  bool distinguishable = false;
};
Comparison compare_arms(const MeanStd& a, const MeanStd& b);

// The same comparison paired by seed: arms of one seed share initialisation
// seed and data order, so the per-seed difference a_s − b_s removes what the
// seeds share. Called when at least two seeds pair up and |mean| > 2·std of the
// differences. `a` and `b` map seed → final perplexity.
struct PairedComparison {
  MeanStd diff;  // over the seeds both arms ran
  bool distinguishable = false;
};
PairedComparison compare_paired(const std::vector<std::pair<int64_t, double>>& a,
                                const std::vector<std::pair<int64_t, double>>& b);

// Experts per token under a random expert-choice router (each of E experts picks
// its C = ceil(c·S/E) tokens of a group of S uniformly at random): a token is
// picked by each expert independently with probability C/S, so the count is
// Binomial(E, C/S). Bins 0, 1, 2, 3 and 4+, as the router's statistics.
std::array<double, 5> random_router_histogram(int64_t E, double c, int64_t S);
// The E → ∞ limit at fixed c: Poisson(c) (zero experts: e^-c).
std::array<double, 5> poisson_histogram(double c);

}  // namespace sy
