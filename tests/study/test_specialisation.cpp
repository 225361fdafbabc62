// The specialisation report on a hand-made trace: every table against counts made
// by hand (docs/trace.md defines them), the class rules, and bad traces refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/errors.h"
#include "study/specialisation.h"

namespace sy {
namespace {

// 8 tokens, 2 experts, MoE layer 3; piece, tag, routes, dropped.
const char* kTrace = R"({"format":"switchyard-trace","version":1,"router":"gshard_top2","experts":2,"layers":[3],"rules":["eval"],"seq":8,"tokens":8,"split":"val","run":"r","tags":["at","nn","vbd",".","nns"]}
{"pos":0,"t":0,"id":5,"piece":"▁The","tag":"at","r":{"eval":{"3":[[0,0.9]]}}}
{"pos":1,"t":1,"id":6,"piece":"▁cat","tag":"nn","r":{"eval":{"3":[[1,0.7],[0,0.3]]}}}
{"pos":2,"t":2,"id":7,"piece":"▁sat","tag":"vbd","r":{"eval":{"3":[[1,0.8]]}}}
{"pos":3,"t":3,"id":8,"piece":".","tag":".","r":{"eval":{"3":[[0,0.6]]}},"dropped":{"3":[[1,0.4]]}}
{"pos":4,"t":4,"id":5,"piece":"▁The","tag":"at","r":{"eval":{"3":[[0,0.9]]}}}
{"pos":5,"t":5,"id":6,"piece":"▁cat","tag":"nns","r":{"eval":{"3":[[1,0.7]]}}}
{"pos":6,"t":6,"id":9,"piece":"s","tag":"nns","r":{"eval":{"3":[]}},"dropped":{"3":[[1,0.5],[0,0.2]]}}
{"pos":7,"t":7,"id":1,"piece":"</s>","r":{"eval":{"3":[[1,0.5]]}}}
)";

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(path) << text;
  return path;
}

std::vector<std::string> pieces(const std::vector<PieceCount>& v) {
  std::vector<std::string> out;
  for (const PieceCount& p : v) out.push_back(p.piece + " " + std::to_string(p.count) + "/" + std::to_string(p.occurrences));
  return out;
}

int64_t column(const ClassTable& t, const std::string& cls, int64_t e) {
  for (size_t c = 0; c < t.classes.size(); ++c)
    if (t.classes[c] == cls) return e < 0 ? t.tokens[c] : t.choices[c][e];
  ADD_FAILURE() << "no class " << cls;
  return -1;
}

TEST(Specialisation, HandCountedTables) {
  TraceReportOptions o;
  o.top = 2;
  o.min_occurrences = 2;
  const TraceReport r = read_trace_report(write_file("sy_trace_hand.jsonl", kTrace), o);
  EXPECT_EQ(r.router, "gshard_top2");
  EXPECT_EQ(r.tokens, 8);
  EXPECT_TRUE(r.tagged);
  ASSERT_EQ(r.layers.size(), 1u);
  const TraceLayerReport& l = r.layers[0];
  EXPECT_EQ(l.rule, "eval");
  EXPECT_EQ(l.layer, 3);
  EXPECT_EQ(l.tokens, 8);
  EXPECT_EQ(l.choices, 8);
  EXPECT_EQ(l.dropped, 3);
  EXPECT_EQ(l.choices_per_expert, (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(l.histogram, (std::vector<int64_t>{1, 6, 1, 0, 0}));
  // Most often: by count, ties by piece bytes ("." and "</s>" sort before "▁").
  EXPECT_EQ(pieces(l.most_often[0]), (std::vector<std::string>{"▁The 2/2", ". 1/1"}));
  EXPECT_EQ(pieces(l.most_often[1]), (std::vector<std::string>{"▁cat 2/2", "</s> 1/1"}));
  // Most exclusively, among pieces seen at least twice.
  EXPECT_EQ(pieces(l.most_exclusive[0]), (std::vector<std::string>{"▁The 2/2", "▁cat 1/2"}));
  EXPECT_EQ(pieces(l.most_exclusive[1]), (std::vector<std::string>{"▁cat 2/2"}));
  // Token classes: tokens, and choices per expert.
  EXPECT_EQ(column(l.by_class, "capitalised word", -1), 2);
  EXPECT_EQ(column(l.by_class, "capitalised word", 0), 2);
  EXPECT_EQ(column(l.by_class, "capitalised word", 1), 0);
  EXPECT_EQ(column(l.by_class, "word start", -1), 3);
  EXPECT_EQ(column(l.by_class, "word start", 0), 1);
  EXPECT_EQ(column(l.by_class, "word start", 1), 3);
  EXPECT_EQ(column(l.by_class, "word continuation", -1), 1);
  EXPECT_EQ(column(l.by_class, "word continuation", 0) + column(l.by_class, "word continuation", 1), 0);
  EXPECT_EQ(column(l.by_class, "punctuation", 0), 1);
  EXPECT_EQ(column(l.by_class, "end of document", 1), 1);
  // Part of speech: at → determiner, nn/nns → noun, vbd → verb, '.' → punctuation.
  EXPECT_EQ(column(l.by_tag, "noun", -1), 3);
  EXPECT_EQ(column(l.by_tag, "noun", 0), 1);
  EXPECT_EQ(column(l.by_tag, "noun", 1), 2);
  EXPECT_EQ(column(l.by_tag, "determiner", -1), 2);
  EXPECT_EQ(column(l.by_tag, "determiner", 0), 2);
  EXPECT_EQ(column(l.by_tag, "verb", 1), 1);
  EXPECT_EQ(column(l.by_tag, "punctuation", 0), 1);
  EXPECT_EQ(column(l.by_tag, "other", -1), 0);
  // The markdown: loads and shares as percentages.
  const std::string md = specialisation_markdown({r}, false);
  EXPECT_NE(md.find("| 0 | 50.0 | `▁The` 2/2, `.` 1/1 | `▁The` 2/2, `▁cat` 1/2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| expert | noun | verb | determiner | punctuation |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1 | 66.7 | 100.0 | 0.0 | 0.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("8 choices for 8 tokens (experts per token: 0: 1, 1: 6, 2: 1, 3: 0, 4+: 0); 3 wanted choices dropped"),
            std::string::npos) << md;
}

// I(expert; class): 1 bit when two equally common classes each go to their own
// expert, 0 when both split the same way, and the hand-made trace's value.
TEST(Specialisation, ClassInformation) {
  ClassTable t;
  t.classes = {"a", "b"};
  t.tokens = {4, 4};
  t.choices = {{4, 0}, {0, 4}};
  EXPECT_NEAR(class_information(t).bits, 1.0, 1e-12);
  EXPECT_NEAR(class_information(t).class_entropy_bits, 1.0, 1e-12);
  t.choices = {{2, 2}, {1, 1}};
  EXPECT_NEAR(class_information(t).bits, 0.0, 1e-12);
  // by_tag of the hand-made trace: noun (1, 2), verb (0, 1), determiner (2, 0),
  // punctuation (1, 0); 7 choices, experts 4 and 3.
  const TraceReport r = read_trace_report(write_file("sy_trace_hand2.jsonl", kTrace));
  const double n = 7, pe0 = 4 / n, pe1 = 3 / n;
  auto term = [&](double j, double pc, double pe) { return j > 0 ? j / n * std::log2((j / n) / (pc * pe)) : 0.0; };
  const double want = term(1, 3 / n, pe0) + term(2, 3 / n, pe1) + term(1, 1 / n, pe1) + term(2, 2 / n, pe0) +
                      term(1, 1 / n, pe0);
  EXPECT_NEAR(class_information(r.layers[0].by_tag).bits, want, 1e-12);
  EXPECT_GT(want, 0.3);
}

TEST(Specialisation, ClassesOfPiecesAndTags) {
  EXPECT_EQ(piece_class("\xE2\x96\x81"), "space");
  EXPECT_EQ(piece_class("\xE2\x96\x81" "1961"), "number");
  EXPECT_EQ(piece_class("\xE2\x96\x81,"), "punctuation");
  EXPECT_EQ(piece_class("ing"), "word continuation");
  EXPECT_EQ(piece_class("<unk>"), "special");
  EXPECT_EQ(piece_class("\xE2\x96\x81" "Atlanta"), "capitalised word");
  EXPECT_EQ(tag_class("nns-tl"), "noun");
  EXPECT_EQ(tag_class("np$"), "proper noun");
  EXPECT_EQ(tag_class("ppss+bem"), "pronoun");
  EXPECT_EQ(tag_class("fw-nn"), "noun");
  EXPECT_EQ(tag_class("dod*"), "verb");
  EXPECT_EQ(tag_class("*"), "adverb");
  EXPECT_EQ(tag_class("--"), "punctuation");
  EXPECT_EQ(tag_class("``"), "punctuation");
  EXPECT_EQ(tag_class("jjt"), "adjective");
  EXPECT_EQ(tag_class("wdt"), "determiner");
  EXPECT_EQ(tag_class("cs"), "conjunction");
  EXPECT_EQ(tag_class("od"), "number");
  EXPECT_EQ(tag_class("uh"), "other");
}

TEST(Specialisation, BadTracesAreRefusedNamingTheLine) {
  auto code_of = [](const std::string& text, const std::string& want) {
    try {
      read_trace_report(write_file("sy_trace_bad.jsonl", text));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::bad_input);
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << "accepted: " << text;
  };
  code_of("{\"format\":\"other\"}\n", "line 1: not a switchyard routing trace");
  std::string t = kTrace;
  code_of(t.substr(0, t.find("\n") + 1) + "{\"pos\":0,\"r\":{}}\n", "line 2: missing or malformed field");
  code_of(t.substr(0, t.find("\n") + 1) + "{\"pos\":0,\"piece\":\"a\",\"r\":{\"eval\":{\"3\":[[7,0.5]]}}}\n", "expert 7 of 2");
  code_of(t.substr(0, t.find("\n") + 1) + "not json\n", "line 2: not JSON");
}

}  // namespace
}  // namespace sy
