#include "train/metrics.h"

#include <nlohmann/json.hpp>

#include "core/errors.h"

namespace sy {

MetricsWriter::MetricsWriter(const std::string& path, int64_t keep_before) {
  std::string kept;
  if (keep_before >= 0) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      try {
        if (nlohmann::json::parse(line).at("step").get<int64_t>() < keep_before) kept += line + "\n";
      } catch (const nlohmann::json::exception&) {
        // a line cut short by the crash that ended the previous run
      }
    }
  }
  out_.open(path, std::ios::trunc);
  if (!out_) throw Error(ExitCode::bad_input, "cannot write metrics file '" + path + "'");
  out_ << kept;
  out_.flush();
}

void MetricsWriter::write(const nlohmann::json& line) {
  if (!out_.is_open()) return;
  out_ << line.dump() << '\n';
  out_.flush();
}

}  // namespace sy
