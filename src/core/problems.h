#pragma once
// Validation problems, collected rather than thrown, so one run reports them all.
// A problem names the config key (dotted path), the offending value and the rule;
// config/ adds where the key was written (file:line).
#include <string>
#include <vector>

#include <spdlog/fmt/fmt.h>

namespace sy {

struct Problem {
  std::string key;    // "model.n_heads"
  std::string value;  // "5"
  std::string rule;   // "must divide model.d_model (256)"
};

class Problems {
 public:
  void add(std::string key, std::string value, std::string rule) {
    list_.push_back({std::move(key), std::move(value), std::move(rule)});
  }
  // Adds `rule` for `key` when `ok` is false; returns ok.
  template <class V>
  bool require(bool ok, const std::string& key, const V& value, const std::string& rule) {
    if (!ok) add(key, to_text(value), rule);
    return ok;
  }
  bool empty() const { return list_.empty(); }
  const std::vector<Problem>& list() const { return list_; }

 private:
  template <class V>
  static std::string to_text(const V& v) {
    if constexpr (std::is_same_v<V, bool>) return v ? "true" : "false";
    else return fmt::format("{}", v);
  }
  std::vector<Problem> list_;
};

}  // namespace sy
