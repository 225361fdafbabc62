#include "study/report_stats.h"

#include <cmath>

#include "moe/routing.h"

namespace sy {

MeanStd mean_std(const std::vector<double>& x) {
  MeanStd r;
  r.n = static_cast<int>(x.size());
  if (x.empty()) return r;
  double sum = 0;
  for (double v : x) sum += v;
  r.mean = sum / r.n;
  if (r.n < 2) return r;
  double ss = 0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(ss / (r.n - 1));
  return r;
}

double steps_to_target(const Curve& curve, double target) {
  for (size_t i = 0; i < curve.size(); ++i) {
    const auto [step, ppl] = curve[i];
    if (ppl > target) continue;
    if (i == 0) return step;
    const auto [s0, p0] = curve[i - 1];
    return s0 + (step - s0) * (p0 - target) / (p0 - ppl);  // p0 > target ≥ ppl
  }
  return -1;
}

Comparison compare_arms(const MeanStd& a, const MeanStd& b) {
  Comparison c;
  c.diff = a.mean - b.mean;
  c.sigma = std::sqrt((a.std * a.std + b.std * b.std) / 2);
  c.distinguishable = a.n >= 2 && b.n >= 2 && std::abs(c.diff) > 2 * c.sigma;
  return c;
}

PairedComparison compare_paired(const std::vector<std::pair<int64_t, double>>& a,
                                const std::vector<std::pair<int64_t, double>>& b) {
  std::vector<double> d;
  for (const auto& [seed, va] : a)
    for (const auto& [seed_b, vb] : b)
      if (seed == seed_b) d.push_back(va - vb);
  PairedComparison c;
  c.diff = mean_std(d);
  c.distinguishable = c.diff.n >= 2 && std::abs(c.diff.mean) > 2 * c.diff.std;
  return c;
}

namespace {
std::array<double, 5> fold_tail(const std::vector<double>& pmf) {
  std::array<double, 5> h{};
  double rest = 1;
  for (size_t j = 0; j < 4 && j < pmf.size(); ++j) {
    h[j] = pmf[j];
    rest -= pmf[j];
  }
  h[4] = std::max(0.0, rest);
  return h;
}
}  // namespace

std::array<double, 5> random_router_histogram(int64_t E, double c, int64_t S) {
  const double p = static_cast<double>(expert_choice_capacity(c, S, E)) / S;
  std::vector<double> pmf;
  for (int64_t j = 0; j <= std::min<int64_t>(E, 3); ++j)
    pmf.push_back(std::exp(std::lgamma(E + 1.0) - std::lgamma(j + 1.0) - std::lgamma(E - j + 1.0)) *
                  std::pow(p, j) * std::pow(1 - p, static_cast<double>(E - j)));
  return fold_tail(pmf);
}

std::array<double, 5> poisson_histogram(double c) {
  std::vector<double> pmf;
  double term = std::exp(-c);
  for (int j = 0; j < 4; ++j) {
    pmf.push_back(term);
    term *= c / (j + 1);
  }
  return fold_tail(pmf);
}

}  // namespace sy
