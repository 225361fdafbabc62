#include "checkpoint/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "checkpoint/model_io.h"
#include "checkpoint/safetensors.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/sha256.h"
#include "core/version.h"

#include <spdlog/version.h>

namespace sy {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string step_name(int64_t step) { return fmt::format("step_{:07d}", step); }

// SHA-256 of state.json's content without its own checksum field. nlohmann's
// objects keep keys sorted and print numbers so that they read back exactly, so
// the dump of a parsed state.json equals the dump it was written from.
std::string state_digest(json st) {
  st.erase("state_sha256");
  const std::string text = st.dump();
  return sha256_hex(text.data(), text.size());
}

bool is_step_dir(const fs::directory_entry& e) {
  const std::string f = e.path().filename().string();
  return e.is_directory() && f.rfind("step_", 0) == 0;
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_synced(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(ExitCode::checkpoint, "cannot write '" + tmp + "'");
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fflush(f) == 0 && ok && ::fsync(fileno(f)) == 0;
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(ExitCode::checkpoint, "failed writing '" + path + "' (disk full?)");
}

// Tests of crash safety: SWITCHYARD_CRASH_IN_SAVE=<point>@<step> kills this
// process (SIGKILL, as kill -9) when the save of that step reaches that point.
void crash_point(const char* point, int64_t step) {
  static const char* want = std::getenv("SWITCHYARD_CRASH_IN_SAVE");
  if (want && fmt::format("{}@{}", point, step) == want) {
    flush_logs();
    ::kill(::getpid(), SIGKILL);
  }
}

void retain(const std::string& ckpt_root, int keep_last, const std::string& newest,
            const std::string& protect) {
  if (keep_last <= 0) return;
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(ckpt_root)) {
    const std::string f = e.path().filename().string();
    if (e.is_directory() && f.rfind("step_", 0) == 0) steps.push_back(f);
  }
  std::sort(steps.begin(), steps.end());
  const int64_t excess = static_cast<int64_t>(steps.size()) - keep_last;
  for (int64_t i = 0; i < excess; ++i) {
    const std::string path = ckpt_root + "/" + steps[i];
    if (steps[i] == newest || fs::path(path) == fs::path(protect)) continue;
    std::error_code ec;
    fs::remove_all(path, ec);
  }
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, const CheckpointState& state,
                            const ParamStore& params, const Tensor& m, const Tensor& v,
                            const ShardPlan& plan, Communicator& world, int keep_last,
                            const std::string& protect) {
  const std::string root = run_dir + "/checkpoints";
  const std::string name = step_name(state.step);
  const std::string tmp = root + "/.tmp-" + name;
  const std::string final_dir = root + "/" + name;
  if (world.rank() == 0) {
    std::error_code ec;
    fs::create_directories(root, ec);
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) throw Error(ExitCode::checkpoint, "cannot create '" + tmp + "': " + ec.message());
  }
  world.barrier();
  if (plan.shard >= 0) {
    const size_t bytes = params.values().bytes();
    std::vector<char> host(3 * bytes);
    params.ops().to_host(host.data(), params.values());
    params.ops().to_host(host.data() + bytes, m);
    params.ops().to_host(host.data() + 2 * bytes, v);
    const std::string r = "-rank-" + std::to_string(plan.shard) + ".safetensors";
    const auto mine = [&](const ParamSpec& s) { return plan.dense || s.expert; };
    const std::map<std::string, std::string> meta = {{"format", "switchyard"}};
    write_param_blocks(tmp + "/model" + r, params, {host.data()}, {""}, mine, meta);
    write_param_blocks(tmp + "/optimizer" + r, params, {host.data() + bytes, host.data() + 2 * bytes},
                       {"exp_avg.", "exp_avg_sq."}, mine, meta);
  }
  crash_point("after_shards", state.step);
  world.barrier();
  if (world.rank() == 0) {
    write_file_synced(tmp + "/model.safetensors.index.json", index_shard_files(tmp, "model").dump(2) + "\n");
    write_file_synced(tmp + "/optimizer.safetensors.index.json",
                      index_shard_files(tmp, "optimizer").dump(2) + "\n");
    json files = json::object();
    for (const auto& e : fs::directory_iterator(tmp))
      files[e.path().filename().string()] = sha256_file(e.path().string());
    json router = json::object();
    for (const auto& [k, val] : state.router_state) router[k] = val;
    const json st = {{"format", "switchyard-checkpoint"},
                     {"version", kCheckpointVersion},
                     {"step", state.step},
                     {"tokens_seen", state.tokens_seen},
                     {"adam_steps", state.adam_steps},
                     {"skipped_steps", state.skipped_steps},
                     {"loader", {{"consumed", state.loader_consumed}}},
                     {"rng", {{"kind", "philox4x32-10, counter-based: every draw is keyed by "
                                       "(seed, purpose, step, index); no generator state"}}},
                     {"router_state", router},
                     {"layout", {{"world", state.world}, {"expert_parallel", state.ep}}},
                     {"fingerprint", state.fingerprint},
                     {"config", state.config_yaml},
                     {"versions", {{"switchyard", SWITCHYARD_VERSION},
                                   {"spdlog", fmt::format("{}.{}.{}", SPDLOG_VER_MAJOR, SPDLOG_VER_MINOR, SPDLOG_VER_PATCH)},
                                   {"nlohmann_json", fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR,
                                                                 NLOHMANN_JSON_VERSION_MINOR, NLOHMANN_JSON_VERSION_PATCH)},
                                   {"compiler", __VERSION__}}},
                     {"files", files}};
    json sealed = st;
    sealed["state_sha256"] = state_digest(st);
    write_file_synced(tmp + "/state.json", sealed.dump(2) + "\n");
    fsync_path(tmp);
    crash_point("before_rename", state.step);
    std::error_code ec;
    fs::remove_all(final_dir, ec);
    fs::rename(tmp, final_dir, ec);
    if (ec) throw Error(ExitCode::checkpoint, "cannot rename '" + tmp + "': " + ec.message());
    fsync_path(root);
    crash_point("before_latest", state.step);
    write_file_synced(root + "/latest", name + "\n");
    fsync_path(root);
    retain(root, keep_last, name, protect);
  }
  world.barrier();
  return final_dir;
}

ResumePoint resolve_resume(const std::string& run_dir, const std::string& spec) {
  if (spec != "auto") {
    if (!fs::exists(spec + "/state.json"))
      throw Error(ExitCode::checkpoint, "--resume " + spec + ": no checkpoint there (no state.json)");
    return {spec, ""};
  }
  const std::string root = run_dir + "/checkpoints";
  std::string name, why;
  {
    std::ifstream in(root + "/latest");
    if (!in) why = "checkpoints/latest is missing";
    else if (!(in >> name)) why = "checkpoints/latest is empty";
  }
  if (why.empty()) {
    const std::string dir = root + "/" + name;
    if (fs::exists(dir + "/state.json")) return {dir, ""};
    if (name.find('/') != std::string::npos || !fs::exists(dir))
      why = "checkpoints/latest names '" + name + "', which does not exist";
    else
      throw Error(ExitCode::checkpoint, "'" + root + "/latest' names '" + name +
                                            "', which holds no state.json (resume from an older "
                                            "checkpoint with --resume DIR)");
  }
  // No usable `latest`: the newest step_* that verifies, never a silent fresh start
  // over checkpoints that exist.
  std::vector<std::string> steps;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (is_step_dir(e)) steps.push_back(e.path().filename().string());
  if (steps.empty()) return {"", ""};
  std::sort(steps.rbegin(), steps.rend());
  std::string refused;
  for (const std::string& st : steps) {
    try {
      read_checkpoint_state(root + "/" + st);
      return {root + "/" + st, why + "; resuming from the newest checkpoint that verifies, " + st +
                                   (refused.empty() ? "" : " (refused: " + refused + ")")};
    } catch (const Error& e) {
      refused += (refused.empty() ? "" : "; ") + st + ": " + e.what();
    }
  }
  throw Error(ExitCode::checkpoint, why + ", and no checkpoint in '" + root + "' verifies: " + refused);
}

int64_t committed_step(const std::string& run_dir) {
  std::ifstream latest(run_dir + "/checkpoints/latest");
  std::string name;
  if (!(latest >> name)) return -1;
  std::ifstream in(run_dir + "/checkpoints/" + name + "/state.json");
  const json st = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (st.is_discarded() || !st.contains("step") || !st["step"].is_number_integer()) return -1;
  return st["step"].get<int64_t>();
}

CheckpointState read_checkpoint_state(const std::string& dir) {
  const std::string path = dir + "/state.json";
  std::ifstream in(path);
  if (!in) throw Error(ExitCode::checkpoint, "'" + path + "' is missing");
  json st;
  try {
    st = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(ExitCode::checkpoint, "'" + path + "' is not valid JSON: " + e.what());
  }
  CheckpointState s;
  try {
    if (!st.is_object() || st.value("format", "") != "switchyard-checkpoint")
      throw Error(ExitCode::checkpoint, "'" + path + "' is not a switchyard checkpoint");
    const int version = st.at("version").is_number_integer() ? st.at("version").get<int>() : -1;
    if (version != kCheckpointVersion && version != 1)
      throw Error(ExitCode::checkpoint, fmt::format("'{}': checkpoint format version {}, this build "
                                                    "reads versions 1 and {}",
                                                    path, st.at("version").dump(), kCheckpointVersion));
    if (version >= 2) {
      if (!st.contains("state_sha256") || !st["state_sha256"].is_string())
        throw Error(ExitCode::checkpoint, "'" + path + "' has no state_sha256: its content is not covered");
      if (state_digest(st) != st["state_sha256"].get<std::string>())
        throw Error(ExitCode::checkpoint, "'" + path + "' fails its own checksum (state_sha256): it "
                                                       "was edited or is corrupt");
    } else {
      log_warn("'{}' is a version 1 checkpoint: its state.json carries no checksum of its own", path);
    }
    // The file list must cover the directory: a shortened list must not turn
    // checksums off.
    const json& files = st.at("files");
    if (!files.is_object()) throw Error(ExitCode::checkpoint, "'" + path + "': \"files\" is not an object");
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string f = e.path().filename().string();
      if (f != "state.json" && !files.contains(f))
        throw Error(ExitCode::checkpoint, "'" + path + "' does not list the checkpoint's file '" + f +
                                              "' (its file list was shortened or the file added)");
    }
    for (const char* index : {"model.safetensors.index.json", "optimizer.safetensors.index.json"})
      if (!files.contains(index))
        throw Error(ExitCode::checkpoint, "'" + path + "' does not list '" + index + "'");
    for (const auto& [file, sum] : files.items()) {
      const std::string f = dir + "/" + file;
      if (file.find('/') != std::string::npos || !sum.is_string())
        throw Error(ExitCode::checkpoint, "'" + path + "': bad file entry '" + file + "'");
      if (!fs::exists(f)) throw Error(ExitCode::checkpoint, "checkpoint file '" + f + "' is missing");
      const std::string got = sha256_file(f);
      if (got != sum.get<std::string>())
        throw Error(ExitCode::checkpoint, "checkpoint file '" + f + "' is corrupt: SHA-256 " + got +
                                              ", state.json records " + sum.get<std::string>());
    }
    s.step = st.at("step").get<int64_t>();
    s.tokens_seen = st.at("tokens_seen").get<int64_t>();
    s.adam_steps = st.at("adam_steps").get<int64_t>();
    s.skipped_steps = st.at("skipped_steps").get<int64_t>();
    s.loader_consumed = st.at("loader").at("consumed").get<int64_t>();
    for (const auto& [k, val] : st.at("router_state").items()) s.router_state[k] = val.get<std::vector<double>>();
    s.world = st.at("layout").at("world").get<int>();
    s.ep = st.at("layout").at("expert_parallel").get<int>();
    s.fingerprint = st.at("fingerprint");
    s.config_yaml = st.at("config").get<std::string>();
    if (s.step < 0 || s.adam_steps < 0 || s.skipped_steps < 0 || s.loader_consumed < 0 ||
        s.tokens_seen < 0 || s.world < 1 || s.ep < 1 || !s.fingerprint.is_object())
      throw Error(ExitCode::checkpoint, "'" + path + "' holds impossible values (negative counters "
                                                     "or an empty layout)");
  } catch (const json::exception& e) {
    throw Error(ExitCode::checkpoint, "'" + path + "' is malformed: " + e.what());
  }
  return s;
}

void load_checkpoint_tensors(const std::string& dir, ParamStore& params, Tensor m, Tensor v,
                             bool experts_sharded) {
  const size_t bytes = params.values().bytes();
  std::vector<char> host(bytes);
  read_param_blocks(dir, "model.safetensors.index.json", params, {host.data()}, {""}, nullptr,
                    experts_sharded);
  params.ops().from_host(params.values(), host.data());
  if (m.empty()) return;
  std::vector<char> moments(2 * bytes);
  read_param_blocks(dir, "optimizer.safetensors.index.json", params,
                    {moments.data(), moments.data() + bytes}, {"exp_avg.", "exp_avg_sq."}, nullptr,
                    experts_sharded);
  params.ops().from_host(m, moments.data());
  params.ops().from_host(v, moments.data() + bytes);
}

std::string describe_checkpoint(const std::string& dir) {
  const CheckpointState s = read_checkpoint_state(dir);
  std::ostringstream out;
  out << fmt::format("checkpoint {}\n  step {}, {} tokens seen, {} optimizer steps, {} skipped\n"
                     "  saved on {} rank(s), expert parallelism {}\n  loader: {} global batches consumed\n",
                     dir, s.step, s.tokens_seen, s.adam_steps, s.skipped_steps, s.world, s.ep,
                     s.loader_consumed);
  for (const auto& [k, val] : s.router_state) out << "  router state " << k << ": " << val.size() << " values\n";
  const std::map<std::string, std::string> map = read_weight_map(dir + "/model.safetensors.index.json");
  std::map<std::string, std::unique_ptr<SafeTensorsFile>> files;
  int64_t total = 0;
  for (const auto& [name, file] : map) {
    auto& f = files[file];
    if (!f) f = std::make_unique<SafeTensorsFile>(dir + "/" + file);
    auto t = f->tensors().find(name);
    if (t == f->tensors().end())
      throw Error(ExitCode::checkpoint, "'" + dir + "/model.safetensors.index.json' maps tensor '" +
                                            name + "' to '" + file + "', which lacks it");
    int64_t n = 1;
    for (int64_t d : t->second.shape) n *= d;
    total += n;
    out << fmt::format("  {:<44} {} [{}]  {}\n", name, t->second.dtype, fmt::join(t->second.shape, ", "), file);
  }
  out << fmt::format("  {} tensors, {} parameters\n", map.size(), total);
  return out.str();
}

std::string checkpoint_state_digest(const json& state) { return state_digest(state); }

std::vector<std::string> fingerprint_changes(const json& saved, const json& now) {
  std::vector<std::string> changed;
  for (const auto& [k, val] : now.items())
    if (!saved.contains(k) || saved[k] != val)
      changed.push_back(k + ": " + (saved.contains(k) ? saved[k].dump() : "(absent)") + " → " + val.dump());
  return changed;
}

}  // namespace sy
