#pragma once
// The routing trace of an evaluation (`switchyard eval --trace FILE`): for every
// evaluated token, which experts of each MoE layer took it and with what gate.
// Format (JSON lines, docs/trace.md): a header object, then one object per token in
// split order.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "data/text_codec.h"
#include "moe/moe_layer.h"

namespace sy {

class RoutingTrace {
 public:
  // layers: the MoE layers' block indices; rules: the evaluation rules recorded
  // ("eval", or "groups" and "threshold" for an expert-choice decoder).
  RoutingTrace(std::vector<int> layers, int64_t experts, std::string router, std::vector<std::string> rules);
  // After the forward of evaluation batch `b` under `rule`: every non-padding row's
  // routes from each layer's plan, and (token choice) the choices capacity dropped.
  void record(const std::string& rule, const Batch& b, const std::vector<MoeLayer*>& layers);
  // Writes the file: pieces from `codec` (may be null: ids only), tags per token
  // from `tag_of` (may be empty) with their names.
  void write(const std::string& path, const nlohmann::json& header_extra, const TextCodec* codec,
             const std::vector<std::string>& tag_names, const std::vector<int32_t>& tag_of_token) const;
  int64_t tokens() const { return static_cast<int64_t>(order_.size()); }

 private:
  struct Choice {
    int32_t expert;
    double gate;
  };
  struct Token {
    int64_t window = 0, t = 0;
    int32_t id = 0;
    std::map<std::string, std::vector<std::vector<Choice>>> routes;  // rule → [layer] choices
    std::vector<std::vector<Choice>> dropped;                         // [layer]: (expert, p)
  };
  std::vector<int> layers_;
  int64_t experts_;
  std::string router_;
  std::vector<std::string> rules_;
  int64_t seq_ = 0;
  std::map<int64_t, Token> tokens_;  // by split position (window · seq + t)
  std::vector<int64_t> order_;       // split positions in the order first seen
};

}  // namespace sy
