#include "train/metrics.h"

#include <nlohmann/json.hpp>

#include "core/errors.h"

namespace sy {

MetricsWriter::MetricsWriter(const std::string& path) : out_(path, std::ios::trunc) {
  if (!out_) throw Error(ExitCode::bad_input, "cannot write metrics file '" + path + "'");
}

void MetricsWriter::write(const nlohmann::json& line) {
  if (!out_.is_open()) return;
  out_ << line.dump() << '\n';
  out_.flush();
}

}  // namespace sy
