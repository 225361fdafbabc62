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
  explicit MetricsWriter(const std::string& path);  // truncates
  void write(const nlohmann::json& line);
  bool open() const { return out_.is_open(); }

 private:
  std::ofstream out_;
};

}  // namespace sy
