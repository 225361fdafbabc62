#include "train/trace.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/errors.h"

namespace sy {

RoutingTrace::RoutingTrace(std::vector<int> layers, int64_t experts, std::string router,
                           std::vector<std::string> rules)
    : layers_(std::move(layers)), experts_(experts), router_(std::move(router)), rules_(std::move(rules)) {}

void RoutingTrace::record(const std::string& rule, const Batch& b, const std::vector<MoeLayer*>& layers) {
  SY_CHECK(layers.size() == layers_.size(), "trace: {} MoE layers, {} expected", layers.size(), layers_.size());
  const int64_t B = b.batch, T = b.seq;
  seq_ = T;
  std::vector<Token*> row_token(static_cast<size_t>(B * T), nullptr);
  for (int64_t r = 0; r < B; ++r) {
    if (b.windows[r] < 0) continue;  // padding
    for (int64_t t = 0; t < T; ++t) {
      const int64_t key = b.windows[r] * T + t;
      auto [it, fresh] = tokens_.try_emplace(key);
      Token& tok = it->second;
      if (fresh) {
        tok.window = b.windows[r];
        tok.t = t;
        tok.id = b.ids[r * T + t];
        tok.dropped.assign(layers_.size(), {});
        order_.push_back(key);
      }
      std::vector<std::vector<Choice>>& routes = tok.routes[rule];
      routes.assign(layers_.size(), {});
      row_token[r * T + t] = &tok;
    }
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    const RoutePlan& plan = layers[l]->plan();
    for (int64_t e = 0; e + 1 < static_cast<int64_t>(plan.expert_begin.size()); ++e)
      for (int64_t s = plan.expert_begin[e]; s < plan.expert_begin[e + 1]; ++s)
        if (Token* tok = row_token[plan.slot_token[s]])
          tok->routes[rule][l].push_back({static_cast<int32_t>(e), plan.slot_gate[s]});
    if (rule == rules_.front())
      for (const Router::Dropped& d : layers[l]->router().dropped_choices())
        if (Token* tok = row_token[d.row]) tok->dropped[l].push_back({d.expert, d.p});
  }
}

void RoutingTrace::write(const std::string& path, const nlohmann::json& header_extra, const TextCodec* codec,
                         const std::vector<std::string>& tag_names,
                         const std::vector<int32_t>& tag_of_token) const {
  const std::string tmp = path + ".tmp";
  std::ofstream out(tmp);
  if (!out) throw Error(ExitCode::bad_input, "--trace: cannot write '" + tmp + "'");
  nlohmann::json head = header_extra;
  head["format"] = "switchyard-trace";
  head["version"] = 1;
  head["router"] = router_;
  head["experts"] = experts_;
  head["layers"] = layers_;
  head["rules"] = rules_;
  head["seq"] = seq_;
  head["tokens"] = order_.size();
  if (!tag_names.empty()) head["tags"] = tag_names;
  const auto dump = [](const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  out << dump(head) << "\n";
  auto choices = [](const std::vector<Choice>& cs) {
    nlohmann::json a = nlohmann::json::array();
    for (const Choice& c : cs) a.push_back({c.expert, c.gate});
    return a;
  };
  for (int64_t key : order_) {
    const Token& tok = tokens_.at(key);
    nlohmann::json j = {{"pos", key}, {"t", tok.t}, {"id", tok.id}};
    if (codec) j["piece"] = codec->piece(tok.id);
    if (!tag_of_token.empty() && key < static_cast<int64_t>(tag_of_token.size()) && tag_of_token[key] >= 0)
      j["tag"] = tag_names.at(static_cast<size_t>(tag_of_token[key]));
    nlohmann::json r = nlohmann::json::object();
    for (const auto& [rule, layers] : tok.routes) {
      nlohmann::json per = nlohmann::json::object();
      for (size_t l = 0; l < layers.size(); ++l) per[std::to_string(layers_[l])] = choices(layers[l]);
      r[rule] = per;
    }
    j["r"] = r;
    bool any_dropped = false;
    for (const auto& d : tok.dropped) any_dropped = any_dropped || !d.empty();
    if (any_dropped) {
      nlohmann::json d = nlohmann::json::object();
      for (size_t l = 0; l < tok.dropped.size(); ++l)
        if (!tok.dropped[l].empty()) d[std::to_string(layers_[l])] = choices(tok.dropped[l]);
      j["dropped"] = d;
    }
    out << dump(j) << "\n";
  }
  out.flush();
  if (!out) throw Error(ExitCode::bad_input, "--trace: cannot write '" + tmp + "' (disk full?)");
  out.close();
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(ExitCode::bad_input, "--trace: cannot write '" + path + "'");
}

}  // namespace sy
