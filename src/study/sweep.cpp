#include "study/sweep.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include <spdlog/fmt/fmt.h>

#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "core/errors.h"

namespace sy {
namespace fs = std::filesystem;

namespace {

std::string where(const std::string& file, const YAML::Node& n) {
  return fmt::format("{}:{}", file, n.Mark().line + 1);
}

std::string flow_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

bool safe_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
         });
}

std::vector<int64_t> read_seeds(const YAML::Node& n, const std::string& at, std::vector<std::string>& errs) {
  std::vector<int64_t> seeds;
  if (!n.IsSequence() || n.size() == 0) {
    errs.push_back(at + ": seeds must be a non-empty list of integers, e.g. [1, 2, 3]");
    return seeds;
  }
  for (const auto& s : n) {
    try {
      seeds.push_back(s.as<int64_t>());
    } catch (const YAML::Exception&) {
      errs.push_back(where(at.substr(0, at.rfind(':')), s) + ": seed '" + flow_text(s) + "' is not an integer");
    }
  }
  if (std::set<int64_t>(seeds.begin(), seeds.end()).size() != seeds.size())
    errs.push_back(at + ": seeds repeat; each seed must be distinct");
  return seeds;
}

// `set` of an arm or of the whole sweep: key: value → "key=value", in file order.
void read_overrides(const YAML::Node& set, const std::string& file, const std::string& who,
                    std::vector<std::string>& out, std::vector<std::string>& errs) {
  if (!set) return;
  if (!set.IsMap()) {
    errs.push_back(where(file, set) + ": set must be a map of key: value");
    return;
  }
  for (const auto& kv : set) {
    const std::string k = kv.first.Scalar();
    if (k == "seed" || k == "run.dir")
      errs.push_back(where(file, kv.first) + ": " + who + " sets " + k + ", which the sweep sets for every run");
    out.push_back(k + "=" + flow_text(kv.second));
  }
}

SweepArm read_arm(const YAML::Node& a, const std::string& file, const std::vector<int64_t>& seeds,
                  const std::vector<std::string>& common, std::vector<std::string>& errs) {
  SweepArm arm;
  const std::string at = where(file, a);
  if (!a.IsMap()) {
    errs.push_back(at + ": an arm is a map with name and set");
    return arm;
  }
  for (const auto& kv : a) {
    const std::string k = kv.first.Scalar();
    if (k != "name" && k != "set" && k != "seeds")
      errs.push_back(where(file, kv.first) + ": arm key '" + k + "' is unknown (name, seeds, set)");
  }
  arm.name = a["name"] ? a["name"].Scalar() : "";
  if (!safe_name(arm.name))
    errs.push_back(at + ": arm name '" + arm.name + "' must be non-empty letters, digits, '.', '_' or '-' "
                   "(it names a folder)");
  arm.seeds = a["seeds"] ? read_seeds(a["seeds"], where(file, a["seeds"]), errs) : seeds;
  arm.overrides = common;
  read_overrides(a["set"], file, "arm '" + arm.name + "'", arm.overrides, errs);
  return arm;
}

// What decides the order of the data a run sees, besides its seed.
std::string data_order(const Config& c) {
  return fmt::format("data.source={} data.path={} data.synthetic_tokens={} data.mask_prob={} "
                     "train.batch_size={} train.seq_len={} train.grad_accum={}",
                     static_cast<int>(c.data.source), c.data.path, c.data.synthetic_tokens,
                     c.data.mask_prob, c.train.batch_size, c.train.seq_len, c.train.grad_accum);
}

// Loads every arm's config (at its first seed) to report all config errors
// before anything runs, and checks that no arm changes the data order.
void check_arm_configs(const SweepSpec& spec, std::vector<std::string>& errs) {
  std::string first_order, first_arm;
  for (const SweepArm& arm : spec.arms) {
    if (arm.seeds.empty()) continue;
    std::vector<std::string> o = arm.overrides;
    o.push_back(fmt::format("seed={}", arm.seeds[0]));
    try {
      const Config c = load_config(spec.base, o);
      const std::string order = data_order(c);
      if (first_arm.empty()) {
        first_order = order;
        first_arm = arm.name;
      } else if (order != first_order) {
        errs.push_back(fmt::format("{}: arm '{}' changes the data order of arm '{}' ({} vs {}); arms "
                                   "must share data.*, train.batch_size, seq_len and grad_accum",
                                   spec.file, arm.name, first_arm, order, first_order));
      }
    } catch (const Error& e) {
      errs.push_back(fmt::format("{}: arm '{}': {}", spec.file, arm.name, e.what()));
    }
  }
}

}  // namespace

SweepSpec load_sweep(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw Error(ExitCode::bad_input, "sweep file '" + path + "' cannot be read (does it exist?)");
  } catch (const YAML::Exception& e) {
    throw Error(ExitCode::bad_input, fmt::format("{}:{}: not valid YAML: {}", path, e.mark.line + 1, e.msg));
  }
  SweepSpec spec;
  spec.file = path;
  std::vector<std::string> errs;
  if (!root.IsMap()) throw Error(ExitCode::bad_input, path + ": a sweep file is a map (base, dir, seeds, arms)");
  static const std::set<std::string> known = {"base", "dir",        "seeds", "ranks",    "mpirun",
                                              "target_arm", "set", "arms", "arms_from"};
  for (const auto& kv : root)
    if (!known.count(kv.first.Scalar()))
      errs.push_back(where(path, kv.first) + ": unknown key '" + kv.first.Scalar() +
                     "' (base, dir, seeds, ranks, mpirun, target_arm, set, arms, arms_from)");
  // arms_from: another sweep file's arms (and its seeds and target_arm unless given here).
  std::string arms_file = path;
  if (root["arms_from"]) {
    if (root["arms"]) errs.push_back(where(path, root["arms_from"]) + ": give arms or arms_from, not both");
    arms_file = (fs::path(path).parent_path() / root["arms_from"].Scalar()).lexically_normal().string();
    try {
      const YAML::Node other = YAML::LoadFile(arms_file);
      for (const char* k : {"arms", "seeds", "target_arm"})
        if (!root[k] && other[k]) root[k] = other[k];
    } catch (const YAML::Exception&) {
      errs.push_back(where(path, root["arms_from"]) + ": arms_from '" + arms_file + "' cannot be read as YAML");
    }
  }
  for (const char* k : {"base", "dir", "seeds", "arms"})
    if (!root[k]) errs.push_back(fmt::format("{}: '{}' is missing", path, k));
  if (root["base"]) {
    const fs::path base = root["base"].Scalar();
    spec.base = base.is_absolute() ? base.string() : (fs::path(path).parent_path() / base).lexically_normal().string();
    if (!fs::exists(spec.base))
      errs.push_back(where(path, root["base"]) + ": base config '" + spec.base + "' does not exist");
  }
  if (root["dir"]) spec.dir = root["dir"].Scalar();
  std::vector<int64_t> seeds;
  if (root["seeds"]) seeds = read_seeds(root["seeds"], where(path, root["seeds"]), errs);
  if (root["ranks"]) {
    try {
      spec.ranks = root["ranks"].as<int>();
    } catch (const YAML::Exception&) { spec.ranks = 0; }
    if (spec.ranks < 1) errs.push_back(where(path, root["ranks"]) + ": ranks must be an integer >= 1");
  }
  if (root["mpirun"]) {
    if (root["mpirun"].IsSequence() && root["mpirun"].size() > 0)
      spec.mpirun = root["mpirun"].as<std::vector<std::string>>();
    else
      errs.push_back(where(path, root["mpirun"]) + ": mpirun must be a non-empty list, e.g. [mpirun, --oversubscribe]");
  }
  if (root["target_arm"]) spec.target_arm = root["target_arm"].Scalar();
  if (root["arms"] && (!root["arms"].IsSequence() || root["arms"].size() == 0))
    errs.push_back(where(path, root["arms"]) + ": arms must be a non-empty list");
  std::vector<std::string> common;
  read_overrides(root["set"], path, "the sweep", common, errs);
  if (root["arms"] && root["arms"].IsSequence())
    for (const auto& a : root["arms"]) spec.arms.push_back(read_arm(a, arms_file, seeds, common, errs));
  std::set<std::string> names;
  for (const SweepArm& a : spec.arms)
    if (!a.name.empty() && !names.insert(a.name).second)
      errs.push_back(path + ": arm name '" + a.name + "' appears twice");
  if (!spec.target_arm.empty() && !names.count(spec.target_arm))
    errs.push_back(path + ": target_arm '" + spec.target_arm + "' is not an arm");
  // Every arm's config is checked even when the file has problems of its own: one
  // run reports them all.
  if (!spec.base.empty() && fs::exists(spec.base)) check_arm_configs(spec, errs);
  if (!errs.empty())
    throw Error(ExitCode::bad_input, fmt::format("{} problem(s) in sweep file {}:\n  {}", errs.size(), path,
                                                 fmt::join(errs, "\n  ")));
  return spec;
}

std::vector<SweepRun> expand_sweep(const SweepSpec& spec) {
  std::vector<int64_t> seeds;  // every seed any arm runs, in first-seen order
  for (const SweepArm& a : spec.arms)
    for (int64_t s : a.seeds)
      if (std::find(seeds.begin(), seeds.end(), s) == seeds.end()) seeds.push_back(s);
  std::vector<SweepRun> runs;
  for (int64_t seed : seeds) {
    for (const SweepArm& a : spec.arms) {
      if (std::find(a.seeds.begin(), a.seeds.end(), seed) == a.seeds.end()) continue;
      SweepRun r;
      r.arm = a.name;
      r.seed = seed;
      r.dir = fmt::format("{}/{}/seed_{}", spec.dir, a.name, seed);
      r.overrides = a.overrides;
      r.overrides.push_back(fmt::format("seed={}", seed));
      r.overrides.push_back("run.dir=" + r.dir);
      runs.push_back(std::move(r));
    }
  }
  return runs;
}

RunStatus run_status(const std::string& run_dir, int64_t steps) {
  if (!fs::exists(run_dir + "/metrics.jsonl") && !fs::exists(run_dir + "/checkpoints")) return RunStatus::fresh;
  const bool weights = fs::exists(run_dir + "/model.safetensors") ||
                       fs::exists(run_dir + "/model.safetensors.index.json");
  return weights && committed_step(run_dir) == steps ? RunStatus::finished : RunStatus::partial;
}

}  // namespace sy
