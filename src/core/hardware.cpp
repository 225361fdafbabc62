#include "core/hardware.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "core/files.h"

namespace sy {

nlohmann::json this_machine() {
  std::string cpu = "unknown";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) cpu = line.substr(line.find_first_not_of(" \t", colon + 1));
      break;
    }
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
  return {{"cpu", cpu}, {"cores", std::thread::hardware_concurrency()}, {"host", host}};
}

std::string hardware_key(const nlohmann::json& s) {
  return s.value("cpu", "unknown cpu") + " · " + s.value("backend", "unknown backend") + " · " +
         std::to_string(s.value("ranks", 1)) + (s.value("ranks", 1) == 1 ? " rank" : " ranks");
}

nlohmann::json record_hardware(const std::string& run_dir, int64_t first_step, const std::string& backend,
                               int ranks) {
  const std::string path = run_dir + "/hardware.json";
  nlohmann::json j = {{"sessions", nlohmann::json::array()}};
  if (std::ifstream in(path); in) {
    nlohmann::json old = nlohmann::json::parse(in, nullptr, false);
    if (!old.is_discarded() && old.contains("sessions") && old["sessions"].is_array()) j = old;
  }
  nlohmann::json s = this_machine();
  s["first_step"] = first_step;
  s["backend"] = backend;
  s["ranks"] = ranks;
  if (!j["sessions"].empty() && hardware_key(j["sessions"].back()) == hardware_key(s)) return j;
  j["sessions"].push_back(s);
  write_text_file(path, j.dump(2) + "\n");
  return j;
}

}  // namespace sy
