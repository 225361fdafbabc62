// report.md, report_data.json (what the plots draw) and the PNG plots.
#include "study/report.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

#include "core/errors.h"
#include "core/log.h"
#include "study/plot_script.h"  // kPlotScript: scripts/plot_report.py, embedded at build time

namespace sy {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string pm(const MeanStd& m, int digits = 2) {
  if (m.n == 0) return "–";
  if (m.n == 1) return fmt::format("{:.{}f} (1 seed)", m.mean, digits);
  return fmt::format("{:.{}f} ± {:.{}f}", m.mean, digits, m.std, digits);
}

std::string verdict(const ArmSummary& a, const ArmSummary& b) {
  const Comparison c = compare_arms(a.final_ppl, b.final_ppl);
  if (a.final_ppl.n < 2 || b.final_ppl.n < 2) return fmt::format("{:+.2f}: one seed, cannot tell", c.diff);
  if (!c.distinguishable) return fmt::format("{:+.2f}: not distinguishable (2σ = {:.2f})", c.diff, 2 * c.sigma);
  return fmt::format("**{:+.2f}: {}** (2σ = {:.2f})", c.diff, c.diff < 0 ? "better" : "worse", 2 * c.sigma);
}

std::string paired_verdict(const ArmSummary& a, const ArmSummary& b) {
  const PairedComparison c = compare_paired(a.final_by_seed, b.final_by_seed);
  if (c.diff.n < 2) return "–";
  const std::string text = fmt::format("{:+.2f} ± {:.2f} ({} seeds)", c.diff.mean, c.diff.std, c.diff.n);
  return c.distinguishable ? fmt::format("**{}: {}**", text, c.diff.mean < 0 ? "better" : "worse") : text;
}

const ArmSummary* find_arm(const std::vector<ArmSummary>& arms, const std::string& name) {
  for (const ArmSummary& a : arms)
    if (a.name == name && !a.runs.empty()) return &a;
  return nullptr;
}

// Where the runs ran: results move with the hardware (a BLAS kernel or a thread
// count sums in another order, and the difference grows through training like a
// change of seed), so a comparison across machines says so.
void hardware_lines(std::string& md, const ReportInput& in) {
  std::map<std::string, int> runs_on;
  int unrecorded = 0, mixed = 0;
  for (const RunRecord& r : in.runs) {
    if (r.hardware.empty()) ++unrecorded;
    if (r.hardware.size() > 1) ++mixed;
    for (const std::string& h : r.hardware) runs_on[h] += 1;
  }
  md += "Hardware:\n";
  for (const auto& [h, n] : runs_on) md += fmt::format("- {} ({} run{})\n", h, n, n == 1 ? "" : "s");
  if (unrecorded > 0) md += fmt::format("- not recorded ({} run{}: made before hardware.json)\n", unrecorded, unrecorded == 1 ? "" : "s");
  md += "\n";
  if (runs_on.size() > 1 || mixed > 0) {
    md += fmt::format("**Warning: these runs ran on different hardware** ({} setups{}). Floating-point sums "
                      "differ between BLAS kernels and thread counts, and the difference grows through training "
                      "like a change of seed: compare arms only with seeds run on the same hardware, or read "
                      "differences smaller than the cross-hardware shift (docs/STUDY.md, *Across machines*) as "
                      "noise.\n\n",
                      runs_on.size(), mixed > 0 ? fmt::format("; {} run(s) resumed on other hardware", mixed) : "");
    log_warn("report: the runs ran on {} different hardware setups (see report.md)", runs_on.size());
  }
}

void setup_section(std::string& md, const ReportInput& in) {
  const Config& c = in.runs.front().cfg;
  int finished = 0;
  std::set<std::string> arms;
  for (const RunRecord& r : in.runs) {
    finished += r.finished;
    arms.insert(r.arm);
  }
  md += fmt::format("{} runs ({} finished) in {} arms, from {}.\n\n", in.runs.size(), finished, arms.size(),
                    fmt::join(in.sources, ", "));
  md += fmt::format("Model of the first run: {} · {} layers × {} wide, {} heads, FFN {} · vocabulary {} · "
                    "{} steps × {} sequences × {} tokens.\n\n",
                    c.model.arch == Arch::decoder ? "decoder (causal LM)" : "encoder (masked LM)", c.model.n_layers,
                    c.model.d_model, c.model.n_heads, c.model.d_ff, c.model.vocab_size, c.train.steps,
                    c.train.batch_size * c.train.grad_accum, c.train.seq_len);
  hardware_lines(md, in);
  for (const RunRecord& r : in.runs)
    if (!r.finished)
      md += fmt::format("- unfinished, left out of every table and plot: {} seed {} ({}, logged {} of {} steps)\n",
                        r.arm, r.seed, r.dir, r.log_step.empty() ? 0 : r.log_step.back(), r.cfg.train.steps);
  md += "\n";
}

void quality_section(std::string& md, const std::vector<ArmSummary>& arms, const ArmSummary* target) {
  md += "## Final validation perplexity\n\nMean ± sample standard deviation over seeds. A difference is called only "
        "when it exceeds twice the pooled seed-to-seed standard deviation; otherwise the arms are not "
        "distinguishable at this budget.\n\n";
  md += "The last column pairs runs by seed (same initialisation seed, same data order) and gives the mean ± "
        "std of the per-seed difference; it is called (bold) when |mean| exceeds twice that std.\n\n";
  const std::string t = target ? target->name : "target";
  md += fmt::format("| arm | seeds | val ppl | vs {} | paired by seed, vs {} |\n|---|---|---|---|---|\n", t, t);
  for (const ArmSummary& a : arms) {
    if (a.runs.empty()) continue;
    md += fmt::format("| {} | {} | {} | {} | {} |\n", a.name, a.runs.size(), pm(a.final_ppl),
                      !target ? "–" : &a == target ? "(target)" : verdict(a, *target),
                      !target || &a == target ? "–" : paired_verdict(a, *target));
  }
  std::vector<double> spread;
  for (const ArmSummary& a : arms)
    if (a.final_ppl.n >= 2) spread.push_back(a.final_ppl.std);
  if (!spread.empty()) {
    std::sort(spread.begin(), spread.end());
    md += fmt::format("\nSeed-to-seed standard deviation of the final perplexity: median {:.2f} over {} arms "
                      "(from {:.2f} to {:.2f}).\n", spread[spread.size() / 2], spread.size(), spread.front(),
                      spread.back());
  }
  std::vector<std::string> called;
  size_t with_runs = 0;
  for (const ArmSummary& a : arms) with_runs += !a.runs.empty();
  for (size_t i = 0; i < arms.size(); ++i)
    for (size_t j = i + 1; j < arms.size(); ++j) {
      if (arms[i].runs.empty() || arms[j].runs.empty()) continue;
      const Comparison c = compare_arms(arms[i].final_ppl, arms[j].final_ppl);
      if (c.distinguishable)
        called.push_back(fmt::format("{} {} {} ({:+.2f}, 2σ = {:.2f})", arms[i].name, c.diff < 0 ? "<" : ">",
                                     arms[j].name, c.diff, 2 * c.sigma));
    }
  md += fmt::format("\nEvery pair whose difference exceeds 2σ ({} of {} pairs): {}\n\n", called.size(),
                    with_runs * (with_runs - 1) / 2, called.empty() ? "none" : fmt::format("{}", fmt::join(called, "; ")));
}

// Every run's final perplexity, arm by seed: the spread in full, not summarised.
void per_seed_section(std::string& md, const std::vector<ArmSummary>& arms) {
  std::vector<int64_t> seeds;
  for (const ArmSummary& a : arms)
    for (const auto& [seed, v] : a.final_by_seed)
      if (std::find(seeds.begin(), seeds.end(), seed) == seeds.end()) seeds.push_back(seed);
  std::sort(seeds.begin(), seeds.end());
  if (seeds.size() < 2) return;
  md += "Final validation perplexity of every run:\n\n| arm |";
  for (int64_t s : seeds) md += fmt::format(" seed {} |", s);
  md += "\n|---|";
  for (size_t i = 0; i < seeds.size(); ++i) md += "---|";
  md += "\n";
  for (const ArmSummary& a : arms) {
    if (a.runs.empty()) continue;
    md += "| " + a.name + " |";
    for (int64_t s : seeds) {
      auto it = std::find_if(a.final_by_seed.begin(), a.final_by_seed.end(),
                             [&](const auto& p) { return p.first == s; });
      md += it == a.final_by_seed.end() ? " – |" : fmt::format(" {:.1f} |", it->second);
    }
    md += "\n";
  }
  md += "\n";
}

void target_section(std::string& md, const std::vector<ArmSummary>& arms, const ArmSummary* target, double ppl) {
  if (!target) return;
  const double steps = static_cast<double>(target->runs.front()->cfg.train.steps);
  md += fmt::format("## Steps to the target\n\nTarget: {}'s mean final validation perplexity, **{:.3f}**. The step "
                    "at which each run first reaches it, interpolated linearly between evaluations, and that "
                    "step as a fraction of {}'s {} training steps (the Expert Choice paper's \"2× faster\" is "
                    "a fraction ≤ 0.5).\n\n| arm | reached | steps (mean ± std of those) | fraction |\n|---|---|---|---|\n",
                    target->name, ppl, target->name, steps);
  for (const ArmSummary& a : arms) {
    if (a.runs.empty()) continue;
    std::vector<double> hit;
    for (double s : a.to_target)
      if (s >= 0) hit.push_back(s);
    const MeanStd m = mean_std(hit);
    md += fmt::format("| {} | {}/{} | {} | {} |\n", a.name, hit.size(), a.to_target.size(), hit.empty() ? "–" : pm(m, 0),
                      hit.empty() ? "–" : fmt::format("{:.2f}", m.mean / steps));
  }
  md += "\n";
}

void cost_section(std::string& md, const std::vector<ArmSummary>& arms) {
  md += "## Speed and load\n\nTokens/s: the median of a run's logging windows (those without an evaluation), "
        "then mean ± std over seeds. Dropped: the fraction of token choices lost to capacity, mean over training "
        "and MoE layers. Max/mean load: the busiest expert's tokens over the mean, mean over training.\n\n"
        "| arm | tokens/s | step ms | dropped | max/mean load |\n|---|---|---|---|---|\n";
  for (const ArmSummary& a : arms) {
    if (a.runs.empty()) continue;
    md += fmt::format("| {} | {} | {} | {} | {} |\n", a.name, pm(a.tokens_per_s, 0), pm(a.step_ms, 0),
                      a.token_choice ? fmt::format("{:.2f}%", 100 * a.dropped.mean) : "–",
                      a.max_load.n ? fmt::format("{:.2f}", a.max_load.mean) : "–");
  }
  md += "\n";
}

void expert_choice_section(std::string& md, const std::vector<ArmSummary>& arms) {
  bool any = false;
  for (const ArmSummary& a : arms) any |= a.expert_choice && !a.runs.empty();
  if (!any) return;
  md += "## Experts per token (expert choice)\n\nThe fraction of tokens that 0, 1, 2, 3 and 4+ experts took, over "
        "the last quarter of training, next to a random router at the same group size S, E and c (each expert "
        "takes C = ⌈c·S/E⌉ tokens at random: Binomial(E, C/S) per token). Only the difference says anything "
        "about the learned router. A capped arm is compared with the uncapped random router.\n\n"
        "| arm | S | router | 0 | 1 | 2 | 3 | 4+ |\n|---|---|---|---|---|---|---|---|\n";
  for (const ArmSummary& a : arms) {
    if (!a.expert_choice || a.runs.empty()) continue;
    const auto& h = a.experts_per_token;
    const auto& r = a.random_router;
    md += fmt::format("| {} | {} | learned | {:.1f}% | {:.1f}% | {:.1f}% | {:.1f}% | {:.1f}% |\n", a.name,
                      a.group_tokens, 100 * h[0], 100 * h[1], 100 * h[2], 100 * h[3], 100 * h[4]);
    md += fmt::format("| | | random | {:.1f}% | {:.1f}% | {:.1f}% | {:.1f}% | {:.1f}% |\n", 100 * r[0], 100 * r[1],
                      100 * r[2], 100 * r[3], 100 * r[4]);
  }
  md += "\n## Evaluation rules and leakage (expert choice)\n\nValidation perplexity under the `groups` rule (the "
        "training rule) and the causal `threshold` rule, and the gap between the final training NLL and the "
        "causal validation NLL. A router that reads future tokens trains below what it can evaluate to: its "
        "gap is far more negative than the other arms'.\n\n"
        "| arm | groups rule | threshold rule | train − causal val NLL |\n|---|---|---|---|\n";
  for (const ArmSummary& a : arms) {
    if (a.runs.empty()) continue;
    md += fmt::format("| {} | {} | {} | {} |\n", a.name, a.final_groups.n ? pm(a.final_groups) : "–",
                      a.final_threshold.n ? pm(a.final_threshold) : "–", pm(a.gap, 3));
  }
  md += "\n";
}

}  // namespace

std::string report_markdown(const ReportInput& in, const std::vector<ArmSummary>& arms, double target_ppl,
                            bool with_plots) {
  std::string md = "# Routing report\n\n";
  setup_section(md, in);
  const ArmSummary* target = target_ppl > 0 ? find_arm(arms, in.target_arm) : nullptr;
  quality_section(md, arms, target);
  per_seed_section(md, arms);
  if (with_plots) md += "![validation perplexity](val_ppl.png)\n\n";
  target_section(md, arms, target, target_ppl);
  cost_section(md, arms);
  if (with_plots) md += "![load](load.png)\n\n";
  expert_choice_section(md, arms);
  bool ec = false;
  for (const ArmSummary& a : arms) ec |= a.expert_choice && !a.runs.empty();
  if (with_plots && ec) md += "![experts per token](experts_per_token.png)\n\n";
  return md;
}

namespace {

json curve_json(const Curve& c) {
  json steps = json::array(), vals = json::array();
  for (const auto& [s, v] : c) {
    steps.push_back(s);
    vals.push_back(v);
  }
  return {{"steps", steps}, {"values", vals}};
}

json report_data(const std::vector<ArmSummary>& arms, double target_ppl, const std::string& target_arm) {
  json j;
  j["target_ppl"] = target_ppl;
  j["target_arm"] = target_arm;
  json list = json::array();
  for (const ArmSummary& a : arms) {
    if (a.runs.empty()) continue;
    json arm{{"name", a.name}, {"expert_choice", a.expert_choice}, {"token_choice", a.token_choice},
             {"tokens_per_s", a.tokens_per_s.mean}, {"experts_per_token", a.experts_per_token},
             {"random_router", a.random_router}};
    json runs = json::array();
    for (const RunRecord* r : a.runs)
      runs.push_back({{"seed", r->seed}, {"val_ppl", curve_json(r->val)}, {"log_step", r->log_step},
                      {"max_load", r->max_load}, {"dropped", r->dropped}});
    arm["runs"] = runs;
    list.push_back(arm);
  }
  j["arms"] = list;
  return j;
}

// The first interpreter that can import matplotlib: $SWITCHYARD_PYTHON, python3, /usr/bin/python3.
std::string find_python() {
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("SWITCHYARD_PYTHON")) candidates.push_back(p);
  candidates.insert(candidates.end(), {"python3", "/usr/bin/python3"});
  for (const std::string& py : candidates)
    if (std::system(("'" + py + "' -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0) return py;
  return "";
}

}  // namespace

bool draw_report_plots(const std::string& data_json, const std::string& out) {
  const std::string py = find_python();
  if (py.empty()) {
    log_error("report: no plots: no python3 with matplotlib (install it: apt-get install python3-matplotlib; "
              "or set SWITCHYARD_PYTHON; or pass --no-plots)");
    return false;
  }
  const std::string cmd = "'" + py + "' - '" + data_json + "' '" + out + "'";
  FILE* pipe = popen(cmd.c_str(), "w");
  if (!pipe) return false;
  std::fputs(kPlotScript, pipe);
  return pclose(pipe) == 0;
}

int write_report(const std::vector<std::string>& dirs, const ReportOptions& opt) {
  ReportInput in = load_runs(dirs);
  if (!opt.target_arm.empty()) in.target_arm = opt.target_arm;
  if (in.target_arm.empty())
    for (const RunRecord& r : in.runs)
      if (r.arm == "gshard_top2") in.target_arm = r.arm;
  const double target_ppl = target_perplexity(in);
  if (!in.target_arm.empty() && target_ppl <= 0)
    log_warn("report: target arm '{}' has no finished run: no steps-to-target table", in.target_arm);
  const std::vector<ArmSummary> arms = summarise(in, target_ppl);
  fs::create_directories(opt.out);
  std::ofstream(opt.out + "/report_data.json") << report_data(arms, target_ppl, in.target_arm).dump() << "\n";
  std::ofstream(opt.out + "/report.md") << report_markdown(in, arms, target_ppl, opt.plots);
  log_info("report: {} runs, {} arms → {}/report.md", in.runs.size(), arms.size(), opt.out);
  if (!opt.plots) return 0;
  if (!draw_report_plots(opt.out + "/report_data.json", opt.out)) return static_cast<int>(ExitCode::internal);
  log_info("report: plots in {}", opt.out);
  return 0;
}

}  // namespace sy
