// From runs to per-arm summaries: the numbers behind every table and plot.
#include <algorithm>
#include <cmath>

#include "study/report.h"

namespace sy {

namespace {

double median_positive(std::vector<double> x, size_t skip_first) {
  std::vector<double> v;
  for (size_t i = skip_first; i < x.size(); ++i)
    if (x[i] > 0) v.push_back(x[i]);
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

double mean_of(const std::vector<double>& x) {
  return x.empty() ? 0 : mean_std(x).mean;
}

// The tokens one group of the router sees (docs/routing.md's S), as the router forms
// groups: by position, the micro-batch's rows; otherwise group_size or the micro-batch.
int64_t group_tokens(const Config& c) {
  const bool by_position = c.moe.router == RouterKind::expert_choice &&
                           (c.moe.ec_grouping == EcGrouping::by_position ||
                            (c.moe.ec_grouping == EcGrouping::automatic && c.model.arch == Arch::decoder));
  if (by_position) return c.train.batch_size;
  const int64_t micro = c.train.batch_size * c.train.seq_len;
  return c.moe.group_size > 0 ? std::min(c.moe.group_size, micro) : micro;
}

// Training NLL at the end (mean of the last five logged steps) minus the causal
// validation NLL: a router that reads future tokens trains to a lower loss than
// it can evaluate to, so its gap is the most negative.
double train_val_gap(const RunRecord& r) {
  const size_t n = r.train_nll.size(), k = std::min<size_t>(5, n);
  double train = 0;
  for (size_t i = n - k; i < n; ++i) train += r.train_nll[i];
  train /= std::max<size_t>(k, 1);
  const double val = r.val_threshold.empty() ? r.final_val_nll : std::log(r.val_threshold.back().second);
  return train - val;
}

void summarise_runs(ArmSummary& a, double target_ppl) {
  std::vector<double> ppl, groups, threshold, tps, ms, dropped, load, gap;
  for (const RunRecord* r : a.runs) {
    ppl.push_back(r->val.back().second);
    a.final_by_seed.emplace_back(r->seed, r->val.back().second);
    if (!r->val_groups.empty()) {
      groups.push_back(r->val_groups.back().second);
      threshold.push_back(r->val_threshold.back().second);
    }
    const double t = median_positive(r->tokens_per_s, 1);
    tps.push_back(t);
    const double tokens_per_step = static_cast<double>(r->cfg.train.batch_size * r->cfg.train.grad_accum *
                                                       r->cfg.train.seq_len * r->ranks);
    if (t > 0) ms.push_back(1e3 * tokens_per_step / t);
    if (!r->dropped.empty()) dropped.push_back(mean_of(r->dropped));
    if (!r->max_load.empty()) load.push_back(mean_of(r->max_load));
    gap.push_back(train_val_gap(*r));
    if (target_ppl > 0) a.to_target.push_back(steps_to_target(r->val, target_ppl));
    for (int b = 0; b < 5; ++b) a.experts_per_token[b] += r->experts_per_token[b] / a.runs.size();
  }
  a.final_ppl = mean_std(ppl);
  a.final_groups = mean_std(groups);
  a.final_threshold = mean_std(threshold);
  a.tokens_per_s = mean_std(tps);
  a.step_ms = mean_std(ms);
  a.dropped = mean_std(dropped);
  a.max_load = mean_std(load);
  a.gap = mean_std(gap);
}

}  // namespace

double target_perplexity(const ReportInput& in) {
  std::vector<double> ppl;
  for (const RunRecord& r : in.runs)
    if (r.arm == in.target_arm && r.finished) ppl.push_back(r.val.back().second);
  return ppl.empty() ? 0 : mean_std(ppl).mean;
}

std::vector<ArmSummary> summarise(const ReportInput& in, double target_ppl) {
  std::vector<ArmSummary> arms;
  for (const RunRecord& r : in.runs) {
    auto it = std::find_if(arms.begin(), arms.end(), [&](const ArmSummary& a) { return a.name == r.arm; });
    if (it == arms.end()) {
      arms.emplace_back();
      it = arms.end() - 1;
      it->name = r.arm;
      const MoeConfig& m = r.cfg.moe;
      it->expert_choice = m.enabled() && m.router == RouterKind::expert_choice;
      it->token_choice = m.enabled() && !it->expert_choice;
      it->experts = m.num_experts;
      it->ec_capacity = m.ec_capacity;
      it->group_tokens = group_tokens(r.cfg);
      if (it->expert_choice) it->random_router = random_router_histogram(m.num_experts, m.ec_capacity, it->group_tokens);
    }
    if (r.finished) it->runs.push_back(&r);
  }
  for (ArmSummary& a : arms)
    if (!a.runs.empty()) summarise_runs(a, target_ppl);
  return arms;
}

}  // namespace sy
