#include "study/specialisation.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/log.h"
#include "study/report.h"

namespace sy {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kWordStart = "\xE2\x96\x81";  // ▁

const std::vector<std::string> kPieceClasses = {"word start",  "capitalised word", "word continuation",
                                                "number",      "punctuation",      "space",
                                                "end of document", "special",      "other"};
const std::vector<std::string> kTagClasses = {"noun",   "proper noun", "pronoun",     "verb",
                                              "adjective", "adverb",   "preposition", "determiner",
                                              "conjunction", "number", "punctuation", "other"};

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

size_t index_of(const std::vector<std::string>& v, const std::string& x) {
  return static_cast<size_t>(std::find(v.begin(), v.end(), x) - v.begin());
}

ClassTable empty_table(const std::vector<std::string>& classes, int64_t E) {
  ClassTable t;
  t.classes = classes;
  t.tokens.assign(classes.size(), 0);
  t.choices.assign(classes.size(), std::vector<int64_t>(static_cast<size_t>(E), 0));
  return t;
}

// One (rule, layer) while reading.
struct Accumulator {
  TraceLayerReport r;
  std::vector<std::map<std::string, int64_t>> piece_counts;  // [E] piece → tokens taken
};

std::vector<PieceCount> most_often(const std::map<std::string, int64_t>& counts,
                                   const std::map<std::string, int64_t>& occ, int top) {
  std::vector<PieceCount> v;
  for (const auto& [p, c] : counts) v.push_back({p, c, occ.at(p)});
  std::sort(v.begin(), v.end(), [](const PieceCount& a, const PieceCount& b) {
    return a.count != b.count ? a.count > b.count : a.piece < b.piece;
  });
  if (static_cast<int>(v.size()) > top) v.resize(static_cast<size_t>(top));
  return v;
}

std::vector<PieceCount> most_exclusive(const std::map<std::string, int64_t>& counts,
                                       const std::map<std::string, int64_t>& occ, int top, int64_t min_occ) {
  std::vector<PieceCount> v;
  for (const auto& [p, c] : counts)
    if (occ.at(p) >= min_occ) v.push_back({p, c, occ.at(p)});
  // count / occurrences, compared exactly by cross-multiplication.
  std::sort(v.begin(), v.end(), [](const PieceCount& a, const PieceCount& b) {
    const int64_t l = a.count * b.occurrences, r = b.count * a.occurrences;
    if (l != r) return l > r;
    return a.count != b.count ? a.count > b.count : a.piece < b.piece;
  });
  if (static_cast<int>(v.size()) > top) v.resize(static_cast<size_t>(top));
  return v;
}

[[noreturn]] void bad_trace(const std::string& path, int64_t line, const std::string& what) {
  throw Error(ExitCode::bad_input, fmt::format("--trace '{}' line {}: {}", path, line, what));
}

}  // namespace

std::string piece_class(const std::string& piece) {
  if (piece == "</s>") return "end of document";
  if (piece.size() > 2 && piece.front() == '<' && piece.back() == '>') return "special";
  const bool start = starts_with(piece, kWordStart);
  const std::string body = start ? piece.substr(3) : piece;
  if (body.empty()) return start ? "space" : "other";
  bool all_punct = true, all_num = true, any_digit = false;
  for (unsigned char c : body) {
    all_punct = all_punct && c < 0x80 && std::ispunct(c);
    all_num = all_num && (std::isdigit(c) || c == ',' || c == '.');
    any_digit = any_digit || std::isdigit(c);
  }
  if (all_num && any_digit) return "number";
  if (all_punct) return "punctuation";
  if (!start) return "word continuation";
  return std::isupper(static_cast<unsigned char>(body[0])) ? "capitalised word" : "word start";
}

std::string tag_class(const std::string& tag_in) {
  std::string t;
  for (char c : tag_in) t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (t == "*" || starts_with(t, "*-")) return "adverb";  // not, n't (also in headlines: *-hl)
  if (std::none_of(t.begin(), t.end(), [](unsigned char c) { return std::isalnum(c); })) return "punctuation";
  if (starts_with(t, "fw-")) t = t.substr(3);       // foreign word: its tag follows
  t = t.substr(0, t.find('+'));                     // contractions: the first part
  if (t.find('-') != std::string::npos && t.find('-') > 0) t = t.substr(0, t.find('-'));  // -tl, -hl, -nc
  while (!t.empty() && (t.back() == '$' || t.back() == '*')) t.pop_back();  // possessive, negated (dod*)
  auto in = [&](std::initializer_list<const char*> xs) {
    for (const char* x : xs)
      if (t == x) return true;
    return false;
  };
  auto prefix = [&](std::initializer_list<const char*> xs) {
    for (const char* x : xs)
      if (starts_with(t, x)) return true;
    return false;
  };
  if (in({"nn", "nns", "nr", "nrs"})) return "noun";
  if (in({"np", "nps"})) return "proper noun";
  if (prefix({"pp", "wp"}) || in({"pn", "ex"})) return "pronoun";
  if (prefix({"vb", "be", "hv", "do"}) || t == "md") return "verb";
  if (in({"jj", "jjr", "jjs", "jjt"})) return "adjective";
  if (prefix({"rb", "ql", "wql", "wrb"}) || in({"rn", "rp"})) return "adverb";
  if (in({"in", "to"})) return "preposition";
  if (prefix({"dt"}) || in({"at", "ap", "abn", "abx", "abl", "wdt"})) return "determiner";
  if (in({"cc", "cs"})) return "conjunction";
  if (in({"cd", "od"})) return "number";
  return "other";
}

ClassInformation class_information(const ClassTable& t) {
  double total = 0;
  std::vector<double> pe, pc(t.choices.size(), 0.0);
  for (size_t c = 0; c < t.choices.size(); ++c)
    for (size_t e = 0; e < t.choices[c].size(); ++e) {
      if (pe.size() <= e) pe.resize(e + 1, 0.0);
      pe[e] += static_cast<double>(t.choices[c][e]);
      pc[c] += static_cast<double>(t.choices[c][e]);
      total += static_cast<double>(t.choices[c][e]);
    }
  ClassInformation out;
  if (total <= 0) return out;
  for (size_t c = 0; c < pc.size(); ++c) {
    if (pc[c] > 0) out.class_entropy_bits -= pc[c] / total * std::log2(pc[c] / total);
    for (size_t e = 0; e < t.choices[c].size(); ++e) {
      const double j = static_cast<double>(t.choices[c][e]);
      if (j > 0) out.bits += j / total * std::log2(j * total / (pc[c] * pe[e]));
    }
  }
  return out;
}

TraceReport read_trace_report(const std::string& path, const TraceReportOptions& opt) {
  std::ifstream in(path);
  if (!in) throw Error(ExitCode::bad_input, "--trace: cannot read '" + path + "'");
  TraceReport rep;
  rep.file = path;
  std::vector<std::string> rules;
  std::vector<int> layers;
  std::map<std::string, int64_t> occurrences;  // piece → tokens
  std::vector<Accumulator> acc;                // [rule · layers + layer]
  std::string line;
  int64_t line_no = 0, header_tokens = 0;
  bool header_seen = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      bad_trace(path, line_no, std::string("not JSON: ") + e.what());
    }
    try {
      if (!header_seen) {  // the first non-empty line
        header_seen = true;
        if (j.value("format", "") != "switchyard-trace")
          bad_trace(path, line_no, "not a switchyard routing trace (write one with `switchyard eval --trace`)");
        if (j.at("version").get<int>() != 1)
          bad_trace(path, line_no, "trace version " + j.at("version").dump() + ", this build reads 1");
        rep.router = j.at("router").get<std::string>();
        rep.experts = j.at("experts").get<int64_t>();
        layers = j.at("layers").get<std::vector<int>>();
        rules = j.at("rules").get<std::vector<std::string>>();
        rep.run = j.value("run", "");
        rep.split = j.value("split", "");
        rep.tagged = j.contains("tags");
        header_tokens = j.value("tokens", int64_t{-1});
        if (rep.experts > 65536) bad_trace(path, line_no, fmt::format("{} experts: not a trace switchyard writes", rep.experts));
        if (rep.experts < 1 || layers.empty() || rules.empty()) bad_trace(path, line_no, "header without experts, layers or rules");
        for (const std::string& rule : rules)
          for (int l : layers) {
            Accumulator a;
            a.r.rule = rule;
            a.r.layer = l;
            a.r.choices_per_expert.assign(static_cast<size_t>(rep.experts), 0);
            a.r.histogram.assign(5, 0);
            a.r.most_often.resize(static_cast<size_t>(rep.experts));
            a.r.most_exclusive.resize(static_cast<size_t>(rep.experts));
            a.r.by_class = empty_table(kPieceClasses, rep.experts);
            if (rep.tagged) a.r.by_tag = empty_table(kTagClasses, rep.experts);
            a.piece_counts.resize(static_cast<size_t>(rep.experts));
            acc.push_back(std::move(a));
          }
        continue;
      }
      const std::string piece = j.contains("piece") ? j["piece"].get<std::string>()
                                                    : "#" + std::to_string(j.at("id").get<int64_t>());
      const size_t cls = index_of(kPieceClasses, piece_class(piece));
      const bool has_tag = rep.tagged && j.contains("tag");
      const size_t tcls = has_tag ? index_of(kTagClasses, tag_class(j["tag"].get<std::string>())) : 0;
      occurrences[piece] += 1;
      rep.tokens += 1;
      const json& r = j.at("r");
      for (size_t ri = 0; ri < rules.size(); ++ri)
        for (size_t li = 0; li < layers.size(); ++li) {
          Accumulator& a = acc[ri * layers.size() + li];
          const std::string key = std::to_string(layers[li]);
          const json& cs = r.at(rules[ri]).at(key);
          a.r.tokens += 1;
          a.r.histogram[std::min<size_t>(cs.size(), 4)] += 1;
          a.r.by_class.tokens[cls] += 1;
          if (has_tag) a.r.by_tag.tokens[tcls] += 1;
          for (const json& c : cs) {
            const int64_t e = c.at(0).get<int64_t>();
            if (e < 0 || e >= rep.experts) bad_trace(path, line_no, fmt::format("expert {} of {}", e, rep.experts));
            a.r.choices += 1;
            a.r.choices_per_expert[e] += 1;
            a.piece_counts[e][piece] += 1;
            a.r.by_class.choices[cls][e] += 1;
            if (has_tag) a.r.by_tag.choices[tcls][e] += 1;
          }
          if (ri == 0 && j.contains("dropped") && j["dropped"].contains(key))
            a.r.dropped += static_cast<int64_t>(j["dropped"][key].size());
        }
    } catch (const json::exception& e) {
      bad_trace(path, line_no, std::string("missing or malformed field: ") + e.what());
    }
  }
  if (!header_seen) throw Error(ExitCode::bad_input, "--trace '" + path + "' is empty");
  if (header_tokens >= 0 && header_tokens != rep.tokens)
    throw Error(ExitCode::bad_input, fmt::format("--trace '{}': the header announces {} tokens, the file holds {} "
                                                 "(truncated? write it again with `switchyard eval --trace`)",
                                                 path, header_tokens, rep.tokens));
  for (Accumulator& a : acc) {
    for (int64_t e = 0; e < rep.experts; ++e) {
      a.r.most_often[e] = most_often(a.piece_counts[e], occurrences, opt.top);
      a.r.most_exclusive[e] = most_exclusive(a.piece_counts[e], occurrences, opt.top, opt.min_occurrences);
    }
    rep.layers.push_back(std::move(a.r));
  }
  return rep;
}

namespace {

std::string pct(int64_t a, int64_t b) { return b > 0 ? fmt::format("{:.1f}", 100.0 * a / b) : "–"; }

// Markdown cells must not break the table: escape '|' and show spaces.
std::string cell_piece(const std::string& p) {
  std::string out;
  for (char c : p) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '|') out += "\\|";
    else if (c == '`') out += "'";
    else if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);  // byte pieces: \n, \t, ...
    else out += c;
  }
  return "`" + out + "`";
}

std::string class_table(const ClassTable& t, int64_t E, const std::string& what) {
  std::string md = "| expert |";
  std::string rule = "|---|";
  std::vector<size_t> shown;
  for (size_t c = 0; c < t.classes.size(); ++c)
    if (t.tokens[c] > 0) shown.push_back(c);
  for (size_t c : shown) {
    md += " " + t.classes[c] + " |";
    rule += "---:|";
  }
  md += "\n" + rule + "\n";
  for (int64_t e = 0; e < E; ++e) {
    md += fmt::format("| {} |", e);
    for (size_t c : shown) md += " " + pct(t.choices[c][e], t.tokens[c]) + " |";
    md += "\n";
  }
  md += "| " + what + " |";
  for (size_t c : shown) md += fmt::format(" {} |", t.tokens[c]);
  return md + "\n";
}

std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

// Numbered by the trace's place on the command line: two traces of one router
// (two seeds, two runs) get their own maps.
std::string heatmap_name(size_t trace, const TraceReport& r, const TraceLayerReport& l) {
  return fmt::format("heatmap_{}_{}_{}_layer{}.png", trace + 1, slug(r.router), slug(l.rule), l.layer);
}

}  // namespace

std::string specialisation_markdown(const std::vector<TraceReport>& reports, bool with_plots) {
  std::string md = "# Expert specialisation\n\n";
  md += "From routing traces (`switchyard eval --trace`, docs/trace.md). A class table's cell is the share of "
        "the class's tokens that the expert took: a column sums to the class's mean number of experts per token "
        "(1 for top-1, 2 for top-2), and an expert indifferent to the class shows its load × that mean in every "
        "column. I(expert; class) is the mutual information between a routed choice's expert and its token's "
        "class, in bits, beside the class entropy that bounds it.\n\n";
  for (size_t ti = 0; ti < reports.size(); ++ti) {
    const TraceReport& r = reports[ti];
    md += fmt::format("## {} — {}\n\n", r.router, r.run.empty() ? r.file : r.run);
    md += fmt::format("{} tokens of the {} split, {} experts; trace `{}`{}.\n\n", r.tokens,
                      r.split.empty() ? "evaluated" : r.split, r.experts, r.file,
                      r.tagged ? ", with part-of-speech tags" : "");
    for (const TraceLayerReport& l : r.layers) {
      md += fmt::format("### layer {}, rule `{}`\n\n", l.layer, l.rule);
      md += fmt::format("{} choices for {} tokens (experts per token: 0: {}, 1: {}, 2: {}, 3: {}, 4+: {})", l.choices,
                        l.tokens, l.histogram[0], l.histogram[1], l.histogram[2], l.histogram[3], l.histogram[4]);
      if (l.dropped > 0) md += fmt::format("; {} wanted choices dropped by capacity", l.dropped);
      md += ".\n\n| expert | load % | most often (tokens / occurrences) | most exclusively |\n|---|---:|---|---|\n";
      for (int64_t e = 0; e < r.experts; ++e) {
        auto list = [](const std::vector<PieceCount>& v) {
          std::string s;
          for (const PieceCount& p : v) s += (s.empty() ? "" : ", ") + cell_piece(p.piece) + fmt::format(" {}/{}", p.count, p.occurrences);
          return s.empty() ? std::string("–") : s;
        };
        md += fmt::format("| {} | {} | {} | {} |\n", e, pct(l.choices_per_expert[e], l.choices), list(l.most_often[e]),
                          list(l.most_exclusive[e]));
      }
      const ClassInformation ic = class_information(l.by_class);
      md += fmt::format("\nShare of each token class's tokens taken by each expert (%); I(expert; token class) = {:.3f} bits of H = {:.3f} "
                        "({:.0f}%):\n\n",
                        ic.bits, ic.class_entropy_bits, ic.class_entropy_bits > 0 ? 100 * ic.bits / ic.class_entropy_bits : 0.0) +
            class_table(l.by_class, r.experts, "tokens");
      if (r.tagged) {
        const ClassInformation it = class_information(l.by_tag);
        md += fmt::format("\nShare of each part-of-speech class's tokens taken by each expert (%); I(expert; part of speech) = {:.3f} bits of "
                          "H = {:.3f} ({:.0f}%):\n\n",
                          it.bits, it.class_entropy_bits, it.class_entropy_bits > 0 ? 100 * it.bits / it.class_entropy_bits : 0.0) +
              class_table(l.by_tag, r.experts, "tokens");
        if (with_plots) md += "\n![expert × part of speech](" + heatmap_name(ti, r, l) + ")\n";
      }
      md += "\n";
    }
  }
  return md;
}

int write_trace_report(const std::vector<std::string>& traces, const std::string& out, bool plots) {
  std::vector<TraceReport> reports;
  for (const std::string& t : traces) reports.push_back(read_trace_report(t));
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw Error(ExitCode::bad_input, "report --out '" + out + "': cannot create it: " + ec.message());
  bool any_tags = false;
  json heat = {{"heatmaps", json::array()}};
  for (size_t ti = 0; ti < reports.size(); ++ti)
    for (const TraceLayerReport& l : reports[ti].layers) {
      const TraceReport& r = reports[ti];
      if (!r.tagged) continue;
      any_tags = true;
      json m = {{"file", heatmap_name(ti, r, l)},
                {"title", fmt::format("{}: layer {}, rule {}", r.router, l.layer, l.rule)},
                {"classes", json::array()},
                {"values", json::array()}};
      for (size_t c = 0; c < l.by_tag.classes.size(); ++c) {
        const int64_t all = l.by_tag.tokens[c];
        if (all == 0) continue;
        m["classes"].push_back(l.by_tag.classes[c]);
        json col = json::array();
        for (int64_t x : l.by_tag.choices[c]) col.push_back(static_cast<double>(x) / all);
        m["values"].push_back(col);
      }
      heat["heatmaps"].push_back(m);
    }
  const bool draw = plots && any_tags;
  if (!(std::ofstream(out + "/specialisation.md") << specialisation_markdown(reports, draw)))
    throw Error(ExitCode::bad_input, "report: cannot write '" + out + "/specialisation.md'");
  log_info("report: {} trace(s) → {}/specialisation.md", reports.size(), out);
  if (!draw) return 0;
  if (!(std::ofstream(out + "/specialisation_data.json") << heat.dump() << "\n"))
    throw Error(ExitCode::bad_input, "report: cannot write '" + out + "/specialisation_data.json'");
  if (!draw_report_plots(out + "/specialisation_data.json", out)) return static_cast<int>(ExitCode::internal);
  log_info("report: heat maps in {}", out);
  return 0;
}

}  // namespace sy
