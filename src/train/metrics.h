#pragma once
// metrics.jsonl: one JSON object per logged step, flushed line by line so a
// killed run keeps everything it logged.
#include <fstream>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace sy {

class MetricsWriter {
 public:
  MetricsWriter() = default;
  // Truncates, or with keep_before ≥ 0 keeps the lines of steps < keep_before (a
  // resumed run continues the file exactly where its checkpoint was taken).
  explicit MetricsWriter(const std::string& path, int64_t keep_before = -1);
  void write(const nlohmann::json& line);
  bool open() const { return out_.is_open(); }

 private:
  std::ofstream out_;
};

}  // namespace sy
