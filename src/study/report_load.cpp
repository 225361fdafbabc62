// Reading runs for the report: sweep directories, run directories, or folders of them.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

#include "core/errors.h"
#include "core/hardware.h"
#include "core/log.h"
#include "study/report.h"

namespace sy {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A number from a metrics line; `absent` where the key is missing or holds no
// number: runs with train.skip_non_finite log a non-finite loss, which JSON can
// only write as null.
double number(const json& j, const char* key, double absent) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return absent;
  return j[key].get<double>();
}

double mean_over_layers(const json& layers, const char* key) {
  double s = 0;
  int n = 0;
  if (!layers.is_array()) return 0;
  for (const json& l : layers) {
    const double v = number(l, key, std::nan(""));
    if (!std::isnan(v)) {
      s += v;
      ++n;
    }
  }
  return n ? s / n : 0;
}

RunRecord read_run(const std::string& dir, std::string arm, int64_t seed, int ranks) {
  RunRecord r;
  r.dir = dir;
  r.ranks = ranks;
  r.cfg = load_config(dir + "/config.yaml");
  r.seed = seed >= 0 ? seed : static_cast<int64_t>(r.cfg.seed);
  r.arm = arm.empty() ? fs::path(dir).filename().string() : std::move(arm);
  if (std::ifstream hw(dir + "/hardware.json"); hw) {
    const json h = json::parse(hw, nullptr, false);
    if (!h.is_discarded() && h.contains("sessions") && h["sessions"].is_array())
      for (const json& s : h["sessions"]) {
        const std::string key = hardware_key(s);
        if (std::find(r.hardware.begin(), r.hardware.end(), key) == r.hardware.end()) r.hardware.push_back(key);
      }
  }
  std::ifstream in(dir + "/metrics.jsonl");
  std::vector<std::pair<double, std::array<double, 5>>> hists;  // (step, counts)
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    const json j = json::parse(line, nullptr, false);
    const double step = number(j, "step", -1);
    if (j.is_discarded() || step < 0)
      throw Error(ExitCode::bad_input,
                  fmt::format("{}/metrics.jsonl:{}: not a metrics line (no step number)", dir, line_no));
    const double done = step + 1;
    r.log_step.push_back(done);
    r.train_nll.push_back(number(j, "nll", std::nan("")));  // NaN: a skipped, non-finite step
    r.tokens_per_s.push_back(j.contains("val_ppl") ? -1 : number(j, "tokens_per_s", 0.0));  // -1: window held an evaluation
    if (j.contains("moe") && j["moe"].is_array()) {
      r.dropped.push_back(mean_over_layers(j["moe"], "dropped_fraction"));
      r.max_load.push_back(mean_over_layers(j["moe"], "max_over_mean_load"));
      std::array<double, 5> h{};
      for (const json& l : j["moe"])
        if (l.is_object() && l.contains("experts_per_token") && l["experts_per_token"].is_array())
          for (size_t b = 0; b < 5 && b < l["experts_per_token"].size(); ++b)
            if (l["experts_per_token"][b].is_number()) h[b] += l["experts_per_token"][b].get<double>();
      hists.emplace_back(done, h);
    }
    const double ppl = number(j, "val_ppl", std::nan(""));
    if (!std::isnan(ppl)) {  // an evaluation that gave no finite number is left out
      r.val.emplace_back(done, ppl);
      r.final_val_nll = number(j, "val_nll", std::log(ppl));
      const double g = number(j, "val_ppl_groups", std::nan("")), t = number(j, "val_ppl_threshold", std::nan(""));
      if (!std::isnan(g) && !std::isnan(t)) {
        r.val_groups.emplace_back(done, g);
        r.val_threshold.emplace_back(done, t);
      }
    }
  }
  r.finished = !r.log_step.empty() && r.log_step.back() == static_cast<double>(r.cfg.train.steps) && !r.val.empty() &&
               r.val.back().first == r.log_step.back();
  // Experts per token over the last quarter of training: the settled router.
  std::array<double, 5> h{};
  const double from = 0.75 * static_cast<double>(r.cfg.train.steps);
  for (const auto& [step, counts] : hists)
    if (step > from)
      for (int b = 0; b < 5; ++b) h[b] += counts[b];
  double total = 0;
  for (double v : h) total += v;
  if (total > 0)
    for (int b = 0; b < 5; ++b) r.experts_per_token[b] = h[b] / total;
  return r;
}

bool is_run_dir(const fs::path& p) { return fs::exists(p / "metrics.jsonl") && fs::exists(p / "config.yaml"); }

// arm and seed as the sweep recorded them in the run directory, if it did.
std::pair<std::string, int64_t> sweep_identity(const fs::path& dir) {
  std::ifstream in(dir / "sweep_run.json");
  if (!in) return {"", -1};
  const json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return {"", -1};
  if (!j.is_object()) return {"", -1};
  return {j.contains("arm") && j["arm"].is_string() ? j["arm"].get<std::string>() : "",
          j.contains("seed") && j["seed"].is_number_integer() ? j["seed"].get<int64_t>() : -1};
}

void add_sweep(const fs::path& dir, ReportInput& in) {
  std::ifstream f(dir / "sweep.json");
  const json j = json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("runs") || !j["runs"].is_array())
    throw Error(ExitCode::bad_input, (dir / "sweep.json").string() + ": not a sweep manifest");
  if (in.target_arm.empty()) in.target_arm = j.value("target_arm", std::string());
  const int ranks = j.value("ranks", 1);
  for (const json& r : j["runs"]) {
    const std::string run_dir = (dir / r["dir"].get<std::string>()).string();
    if (!is_run_dir(run_dir)) {
      log_warn("report: {} seed {} has not started ({}): left out", r["arm"].get<std::string>(),
               r["seed"].get<int64_t>(), run_dir);
      continue;
    }
    in.runs.push_back(read_run(run_dir, r["arm"].get<std::string>(), r["seed"].get<int64_t>(), ranks));
  }
}

}  // namespace

static ReportInput load_runs_checked(const std::vector<std::string>& dirs);

ReportInput load_runs(const std::vector<std::string>& dirs) {
  // A manifest or metrics value of an unexpected type is bad input, named, not a
  // crash: the JSON library's own errors are turned into ours.
  try {
    return load_runs_checked(dirs);
  } catch (const json::exception& e) {
    throw Error(ExitCode::bad_input, std::string("report: a sweep.json, sweep_run.json or metrics "
                                                 "file holds a value of the wrong type: ") + e.what());
  }
}

static ReportInput load_runs_checked(const std::vector<std::string>& dirs) {
  ReportInput in;
  for (const std::string& d : dirs) {
    const fs::path dir(d);
    const size_t before = in.runs.size();
    in.sources.push_back(d);
    if (fs::exists(dir / "sweep.json")) {
      add_sweep(dir, in);
    } else if (is_run_dir(dir)) {
      const auto [arm, seed] = sweep_identity(dir);
      in.runs.push_back(read_run(d, arm, seed, 1));
    } else if (fs::is_directory(dir)) {
      std::vector<fs::path> found;
      for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_directory() && is_run_dir(e.path())) found.push_back(e.path());
      std::sort(found.begin(), found.end());
      for (const fs::path& p : found) {
        const auto [arm, seed] = sweep_identity(p);
        in.runs.push_back(read_run(p.string(), arm, seed, 1));
      }
    }
    if (in.runs.size() == before)
      throw Error(ExitCode::bad_input, "report: '" + d + "' holds no run (no metrics.jsonl with a config.yaml, "
                                       "no sweep.json); pass a sweep or run directory");
  }
  return in;
}

}  // namespace sy
