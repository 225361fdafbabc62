#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "backend/ops.h"
#include "config/schema.h"
#include "core/errors.h"

namespace sy {
namespace {

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "a boolean (true or false)";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else if constexpr (std::is_unsigned_v<T>) return "a non-negative integer";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else return "a number";
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// Where each key came from: "file:line" or "--set key=value".
class Locations {
 public:
  void set(const std::string& key, std::string where) { map_[key] = std::move(where); }
  std::string of(const std::string& key, const std::string& fallback) const {
    auto it = map_.find(key);
    return it == map_.end() ? fallback : it->second;
  }

 private:
  std::map<std::string, std::string> map_;
};

// YAML → Config, strictly: reports unknown keys, wrong types and bad choices, and
// keeps going so that one run lists every problem.
class Binder {
 public:
  Binder(const YAML::Node& root, std::string origin, const std::set<std::string>& overridden,
         Locations& where, std::vector<std::string>& errors)
      : origin_(std::move(origin)), overridden_(overridden), where_(where), errors_(errors) {
    frames_.push_back({root, "", {}});
  }

  // A list of strings: a YAML sequence of scalars (one scalar: a list of one).
  void field(const char* key, std::vector<std::string>& out) {
    YAML::Node n = child(key);
    if (!n.IsDefined()) return;
    const std::string path = path_of(key);
    out.clear();
    if (n.IsNull()) return;
    if (n.IsScalar()) {
      out.push_back(n.Scalar());
      return;
    }
    if (!n.IsSequence()) return problem(path, describe(n), "must be a list of strings");
    for (const YAML::Node& x : n) {
      if (!x.IsScalar()) return problem(path, describe(n), "must be a list of strings");
      out.push_back(x.Scalar());
    }
  }

  template <class T>
  void field(const char* key, T& out) {
    YAML::Node n = child(key);
    if (!n.IsDefined()) return;
    const std::string path = path_of(key);
    if (!n.IsScalar()) return problem(path, describe(n), std::string("must be ") + type_name<T>());
    const std::string text = n.Scalar();
    if constexpr (std::is_unsigned_v<T>)
      if (!text.empty() && text[0] == '-')
        return problem(path, text, std::string("must be ") + type_name<T>());
    try {
      out = n.as<T>();
    } catch (const YAML::BadConversion&) {
      return problem(path, text, std::string("must be ") + type_name<T>());
    }
    if constexpr (std::is_floating_point_v<T>) {
      // NaN passes every comparison-based rule unnoticed; infinity means "no
      // limit" for the one key that documents it, and nothing anywhere else.
      if (std::isnan(out)) problem(path, text, "must be a number (NaN is not one)");
      else if (std::isinf(out) && path != "parallel.step_timeout_s") problem(path, text, "must be finite");
    }
  }

  template <class E>
  void choice(const char* key, E& out, const Choices<E>& choices) {
    std::string name;
    YAML::Node n = child(key);
    if (!n.IsDefined()) return;
    field(key, name);
    for (const auto& [text, value] : choices)
      if (name == text) {
        out = value;
        return;
      }
    std::string allowed;
    for (const auto& c : choices) allowed += (allowed.empty() ? "" : ", ") + std::string(c.first);
    problem(path_of(key), name, "must be one of: " + allowed);
  }

  void section(const char* key, const std::function<void()>& body) {
    YAML::Node n = child(key);
    if (!n.IsDefined()) return;  // absent section: all defaults
    const std::string path = path_of(key);
    if (!n.IsMap()) return problem(path, describe(n), "must be a mapping of keys to values");
    check_duplicates(n, path);
    frames_.push_back({n, path, {}});
    body();
    finish_frame();
    frames_.pop_back();
  }

  void finish() { finish_frame(); }

  // YAML allows a key twice in a mapping and keeps the first: a second `train:`
  // section would be ignored in silence. Every repeat is a problem, at its line.
  void check_duplicates(const YAML::Node& map, const std::string& path) {
    std::map<std::string, int> first_line;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string key = it->first.Scalar();
      const std::string full = path.empty() ? key : path + "." + key;
      const int line = it->first.Mark().line + 1;
      auto [pos, fresh] = first_line.emplace(key, line);
      if (!fresh)
        errors_.push_back(fmt::format("{}:{}: {} = {}: duplicate key (first at line {}); one of "
                                      "them would be ignored",
                                      origin_, line, full, describe(it->second), pos->second));
    }
  }

 private:
  struct Frame {
    YAML::Node node;
    std::string path;
    std::set<std::string> known;
  };

  std::string path_of(const char* key) const {
    const std::string& p = frames_.back().path;
    return p.empty() ? key : p + "." + key;
  }

  YAML::Node child(const char* key) {
    Frame& f = frames_.back();
    f.known.insert(key);
    if (!f.node.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    for (auto it = f.node.begin(); it != f.node.end(); ++it)
      if (it->first.Scalar() == key) {
        record(path_of(key), it->first.Mark());
        if (it->second.IsNull())
          problem(path_of(key), "(empty)", "has no value");
        return it->second.IsNull() ? YAML::Node(YAML::NodeType::Undefined) : it->second;
      }
    return YAML::Node(YAML::NodeType::Undefined);
  }

  void record(const std::string& path, const YAML::Mark& m) {
    if (overridden_.count(path)) return;  // keeps its --set origin
    if (m.line >= 0) where_.set(path, origin_ + ":" + std::to_string(m.line + 1));
  }

  // Every key present in the current mapping must be one the schema visited.
  void finish_frame() {
    Frame& f = frames_.back();
    if (!f.node.IsMap()) return;
    for (auto it = f.node.begin(); it != f.node.end(); ++it) {
      const std::string key = it->first.Scalar();
      if (f.known.count(key)) continue;
      const std::string path = f.path.empty() ? key : f.path + "." + key;
      record(path, it->first.Mark());
      std::string rule = "unknown key";
      std::string best;
      size_t best_d = 3;
      for (const std::string& k : f.known) {
        const size_t d = edit_distance(key, k);
        if (d < best_d) best_d = d, best = k;
      }
      if (!best.empty()) rule += " (did you mean '" + best + "'?)";
      problem(path, describe(it->second), rule);
    }
  }

  static std::string describe(const YAML::Node& n) {
    if (n.IsScalar()) return n.Scalar();
    if (n.IsSequence()) return "(a list)";
    if (n.IsMap()) return "(a mapping)";
    return "(empty)";
  }

  void problem(const std::string& path, const std::string& value, const std::string& rule) {
    errors_.push_back(where_.of(path, origin_) + ": " + path + " = " + value + ": " + rule);
  }

  std::string origin_;
  const std::set<std::string>& overridden_;
  Locations& where_;
  std::vector<std::string>& errors_;
  std::vector<Frame> frames_;
};

// Config → YAML.
class Emitter {
 public:
  explicit Emitter(YAML::Emitter& out) : out_(out) {}
  template <class T>
  void field(const char* key, T& v) {
    out_ << YAML::Key << key << YAML::Value;
    if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      out_ << YAML::BeginSeq;
      for (const std::string& s : v) out_ << YAML::DoubleQuoted << s;
      out_ << YAML::EndSeq;
    } else if constexpr (std::is_floating_point_v<T>) out_ << fmt::format("{}", v);
    else out_ << v;
  }
  template <class E>
  void choice(const char* key, E& v, const Choices<E>& choices) {
    for (const auto& c : choices)
      if (c.second == v) out_ << YAML::Key << key << YAML::Value << c.first;
  }
  void section(const char* key, const std::function<void()>& body) {
    out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    body();
    out_ << YAML::EndMap;
  }

 private:
  YAML::Emitter& out_;
};

// Config → "a.b" → value text.
class Flattener {
 public:
  explicit Flattener(std::map<std::string, std::string>& out) : out_(out) {}
  template <class T>
  void field(const char* key, T& v) {
    if constexpr (std::is_same_v<T, std::string>) out_[path(key)] = v;
    else if constexpr (std::is_same_v<T, std::vector<std::string>>) out_[path(key)] = nlohmann::json(v).dump();
    else if constexpr (std::is_same_v<T, bool>) out_[path(key)] = v ? "true" : "false";
    else out_[path(key)] = fmt::format("{}", v);
  }
  template <class E>
  void choice(const char* key, E& v, const Choices<E>& choices) {
    for (const auto& c : choices)
      if (c.second == v) out_[path(key)] = c.first;
  }
  void section(const char* key, const std::function<void()>& body) {
    prefix_.push_back(key);
    body();
    prefix_.pop_back();
  }

 private:
  std::string path(const char* key) const {
    std::string p;
    for (const std::string& s : prefix_) p += s + ".";
    return p + key;
  }
  std::map<std::string, std::string>& out_;
  std::vector<std::string> prefix_;
};

// "a.b.c=value" applied to the YAML tree; the value is parsed as YAML.
void apply_override(YAML::Node root, const std::string& spec, std::set<std::string>& overridden,
                    Locations& where) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error(ExitCode::bad_input,
                "--set " + spec + ": expected KEY=VALUE, e.g. --set optim.lr=1e-3");
  const std::string key = spec.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(spec.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw Error(ExitCode::bad_input, "--set " + spec + ": value is not valid YAML: " + e.msg);
  }
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  YAML::Node node = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = node[parts[i]];
    if (next.IsDefined() && !next.IsMap() && !next.IsNull())
      throw Error(ExitCode::bad_input,
                  "--set " + spec + ": '" + parts[i] + "' is a value, not a section");
    if (!next.IsDefined() || next.IsNull()) node[parts[i]] = YAML::Node(YAML::NodeType::Map);
    node.reset(node[parts[i]]);
  }
  node[parts.back()] = value;
  overridden.insert(key);
  where.set(key, "--set " + spec);
}

void validate_train(const TrainConfig& t, const RunConfig& r, Problems& p) {
  p.require(t.steps >= 1, "train.steps", t.steps, "must be positive");
  p.require(t.batch_size >= 1, "train.batch_size", t.batch_size, "must be positive");
  p.require(t.seq_len >= 2, "train.seq_len", t.seq_len, "must be at least 2");
  p.require(t.label_smoothing >= 0 && t.label_smoothing < 1, "train.label_smoothing",
            t.label_smoothing, "must be in [0, 1)");
  p.require(t.eval_every >= 0, "train.eval_every", t.eval_every, "must be >= 0 (0: at the end)");
  p.require(t.eval_batches >= 0, "train.eval_batches", t.eval_batches,
            "must be >= 0 (0: the whole split)");
  p.require(r.log_every >= 1, "run.log_every", r.log_every, "must be positive");
  p.require(t.grad_accum >= 1, "train.grad_accum", t.grad_accum, "must be positive");
  p.require(t.sample_every >= 0, "train.sample_every", t.sample_every, "must be >= 0 (0: no samples)");
  p.require(t.sample_tokens >= 1, "train.sample_tokens", t.sample_tokens, "must be positive");
  p.require(t.logits_chunk_rows >= 0, "train.logits_chunk_rows", t.logits_chunk_rows,
            "must be >= 0 (0: every row at once)");
  if (t.sample_every > 0)
    p.require(!t.sample_prompts.empty(), "train.sample_prompts", "[]",
              "must list at least one prompt when train.sample_every is set (e.g. [\"The jury said\"])");
  p.require(!r.dir.empty(), "run.dir", r.dir, "must not be empty");
}

}  // namespace

void Config::validate(Problems& p) const {
  p.require(threads >= 0, "threads", threads, "must be >= 0 (0: every core)");
  if (attention_kernel == AttentionKernel::fused && model.n_heads > 0)
    p.require(model.d_model / model.n_heads <= kFusedAttentionMaxHeadDim, "attention_kernel", "fused",
              "takes head dims up to " + std::to_string(kFusedAttentionMaxHeadDim) + "; model.d_model / model.n_heads is " +
                  std::to_string(model.d_model / model.n_heads) + " (use more heads, or attention_kernel: reference)");
  model.validate(p);
  moe.validate(p, model.d_model);
  if (moe.enabled())
    p.require(moe.every <= model.n_layers, "moe.every", moe.every,
              "must not exceed model.n_layers (" + std::to_string(model.n_layers) + "): no block would be MoE");
  optim.validate(p);
  data.validate(p);
  prepare.validate(p);
  validate_train(train, run, p);
  if (train.sample_every > 0) {
    p.require(model.arch == Arch::decoder, "train.sample_every", train.sample_every,
              "needs a decoder (model.arch: decoder); an encoder does not continue text");
    p.require(data.source != DataSource::synthetic, "train.sample_every", train.sample_every,
              "needs text data (data.source: prepared or bytes); synthetic tokens have no text");
  }
  p.require(train.seq_len <= model.max_seq, "train.seq_len", train.seq_len,
            "must not exceed model.max_seq (" + std::to_string(model.max_seq) + ")");
  if (p.require(parallel.expert_parallel >= 1, "parallel.expert_parallel", parallel.expert_parallel,
                "must be positive") &&
      parallel.expert_parallel > 1)
    p.require(moe.enabled() && moe.num_experts % parallel.expert_parallel == 0,
              "parallel.expert_parallel", parallel.expert_parallel,
              "must divide moe.num_experts (" + std::to_string(moe.num_experts) + ")");
  p.require(checkpoint.every >= 0, "checkpoint.every", checkpoint.every, "must be >= 0 (0: at the end only)");
  p.require(checkpoint.keep_last >= 1, "checkpoint.keep_last", checkpoint.keep_last, "must be positive");
  p.require(parallel.step_timeout_s >= 0, "parallel.step_timeout_s", parallel.step_timeout_s,
            "must be >= 0 (0 or .inf: no limit)");
  p.require(parallel.bucket_mb > 0 && parallel.bucket_mb <= 4096, "parallel.bucket_mb", parallel.bucket_mb,
            "must be in (0, 4096] megabytes (MPI counts elements in ints)");
  p.require(parallel.zero == 0 || parallel.zero == 1, "parallel.zero", parallel.zero,
            "must be 0 (replicated optimizer state) or 1 (sharded, ZeRO stage 1)");
  p.require(parallel.check_replicas_every >= 0, "parallel.check_replicas_every", parallel.check_replicas_every,
            "must be >= 0 (0: never)");
  if (data.source == DataSource::bytes)
    p.require(model.vocab_size >= 256, "model.vocab_size", model.vocab_size,
              "must be at least 256 for data.source: bytes");
}

Config parse_config(const std::string& yaml_text, const std::string& origin,
                    const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw Error(ExitCode::bad_input, fmt::format("{}:{}:{}: not valid YAML: {}", origin,
                                                 e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap())
    throw Error(ExitCode::bad_input, origin + ": the top level must be a mapping of sections");
  Locations where;
  std::set<std::string> overridden;
  for (const std::string& o : overrides) apply_override(root, o, overridden, where);

  Config c;
  std::vector<std::string> errors;
  Binder binder(root, origin, overridden, where, errors);
  binder.check_duplicates(root, "");
  visit_config(binder, c);
  binder.finish();
  Problems problems;
  c.validate(problems);
  for (const Problem& pr : problems.list())
    errors.push_back(where.of(pr.key, origin + " (default)") + ": " + pr.key + " = " + pr.value +
                     ": " + pr.rule);
  if (!errors.empty()) {
    // In the order they stand in the file; --set and defaults after it.
    auto line_of = [&](const std::string& e) {
      if (e.compare(0, origin.size() + 1, origin + ":") != 0) return INT32_MAX;
      return std::atoi(e.c_str() + origin.size() + 1);
    };
    std::stable_sort(errors.begin(), errors.end(), [&](const std::string& a, const std::string& b) {
      return line_of(a) < line_of(b);
    });
    std::string msg = fmt::format("{} problem{} in config {}:", errors.size(),
                                  errors.size() == 1 ? "" : "s", origin);
    for (const std::string& e : errors) msg += "\n  " + e;
    throw Error(ExitCode::bad_input, msg);
  }
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error(ExitCode::bad_input,
                "config file '" + path + "' is a directory; give a YAML file (e.g. configs/default.yaml)");
  std::ifstream in(path);
  if (!in)
    throw Error(ExitCode::bad_input,
                "cannot read config file '" + path + "' (does it exist? try configs/default.yaml)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path, overrides);
}

std::map<std::string, std::string> config_values(const Config& c) {
  std::map<std::string, std::string> out;
  Flattener f(out);
  Config copy = c;
  visit_config(f, copy);
  return out;
}

bool fixed_across_resume(const std::string& key) {
  static const std::set<std::string> fixed = {
      "seed", "moe.num_experts", "moe.router", "moe.every", "moe.expert_d_ff", "moe.expert_kind",
      "data.source", "data.synthetic_tokens", "data.synthetic_branching", "data.eval_fraction",
      "train.seq_len"};
  return (key.rfind("model.", 0) == 0 && key != "model.init_std") || fixed.count(key) > 0;
}

std::vector<std::string> resume_changes(const std::string& saved_yaml, const Config& now) {
  // The saved YAML is read key by key (not through the binder): an older version's
  // config may lack keys or hold retired ones, and is still compared where it can be.
  std::map<std::string, std::string> saved;
  try {
    const std::function<void(const YAML::Node&, const std::string&)> walk =
        [&](const YAML::Node& n, const std::string& prefix) {
          for (auto it = n.begin(); it != n.end(); ++it) {
            const std::string key = prefix + it->first.Scalar();
            if (it->second.IsMap()) walk(it->second, key + ".");
            else if (it->second.IsScalar()) saved[key] = it->second.Scalar();
          }
        };
    const YAML::Node root = YAML::Load(saved_yaml);
    if (root.IsMap()) walk(root, "");
  } catch (const YAML::Exception&) {
    return {"the checkpoint's saved config: not readable YAML"};
  }
  std::vector<std::string> changed;
  for (const auto& [key, value] : config_values(now)) {
    if (!fixed_across_resume(key)) continue;
    auto it = saved.find(key);
    if (it == saved.end()) continue;  // a key the saving version did not have
    // Numbers compare by value (1e-3 and 0.001 are one value).
    char* end_a = nullptr;
    char* end_b = nullptr;
    const double a = std::strtod(it->second.c_str(), &end_a), b = std::strtod(value.c_str(), &end_b);
    const bool numeric = !it->second.empty() && !value.empty() && *end_a == '\0' && *end_b == '\0';
    if (numeric ? a != b : it->second != value) changed.push_back(key + ": " + it->second + " → " + value);
  }
  return changed;
}

std::string to_yaml(const Config& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  Emitter e(out);
  Config copy = c;
  visit_config(e, copy);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace sy
