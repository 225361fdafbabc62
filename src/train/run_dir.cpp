#include "train/run_dir.h"

#include <ctime>
#include <filesystem>

#include "core/errors.h"

namespace sy {
namespace fs = std::filesystem;

std::vector<std::string> existing_run_files(const std::string& dir) {
  std::vector<std::string> found;
  for (const char* f : {"metrics.jsonl", "model.safetensors", "model.safetensors.index.json",
                        "weights.json", "config.yaml"})
    if (fs::exists(dir + "/" + f)) found.push_back(f);
  std::error_code ec;
  int steps = 0;
  for (const auto& e : fs::directory_iterator(dir + "/checkpoints", ec))
    steps += e.path().filename().string().rfind("step_", 0) == 0;
  if (steps > 0) found.push_back(fmt::format("checkpoints/ ({} checkpoint{})", steps, steps == 1 ? "" : "s"));
  return found;
}

std::string move_run_aside(const std::string& dir) {
  const std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", std::gmtime(&now));
  std::string aside = dir + "/replaced-" + when;
  for (int i = 1; fs::exists(aside); ++i) aside = dir + "/replaced-" + when + "-" + std::to_string(i);
  std::error_code ec;
  fs::create_directories(aside, ec);
  if (ec) throw Error(ExitCode::bad_input, "cannot create '" + aside + "': " + ec.message());
  for (const char* f : {"metrics.jsonl", "model.safetensors", "model.safetensors.index.json",
                        "weights.json", "config.yaml", "log.txt", "checkpoints", "samples.jsonl"}) {
    if (!fs::exists(dir + "/" + f)) continue;
    fs::rename(dir + "/" + f, aside + "/" + f, ec);
    if (ec) throw Error(ExitCode::bad_input, "cannot move '" + dir + "/" + f + "' aside: " + ec.message());
  }
  std::vector<std::string> shards;  // expert-parallel weight shards (listed, then moved)
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind("model-rank-", 0) == 0)
      shards.push_back(e.path().filename().string());
  for (const std::string& f : shards) {
    fs::rename(dir + "/" + f, aside + "/" + f, ec);
    if (ec) throw Error(ExitCode::bad_input, "cannot move '" + dir + "/" + f + "' aside: " + ec.message());
  }
  return aside;
}

}  // namespace sy
