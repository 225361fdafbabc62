#pragma once
// `switchyard report --trace FILE…`: what the experts learned, from routing traces
// (`switchyard eval --trace`, docs/trace.md). Per trace (one router), per
// evaluation rule and MoE layer:
//   - the share of routed choices each expert takes;
//   - the pieces each expert takes most often, and those it takes most exclusively;
//   - the share of each token class's choices per expert (classes from the piece
//     text: docs/trace.md), and, when the trace carries part-of-speech tags (Brown),
//     per coarse tag class, drawn as an expert × class heat map.
#include <cstdint>
#include <string>
#include <vector>

namespace sy {

struct PieceCount {
  std::string piece;
  int64_t count = 0;        // tokens of this piece the expert took
  int64_t occurrences = 0;  // tokens of this piece in the trace
};

// Choices of one layer under one rule, split by a class of tokens.
struct ClassTable {
  std::vector<std::string> classes;       // columns, in a fixed order
  std::vector<int64_t> tokens;            // [class] tokens of the class
  std::vector<std::vector<int64_t>> choices;  // [class][expert] choices of the class's tokens
};

// How much knowing a token's class tells about its expert, over routed choices:
// the mutual information I(expert; class) in bits, and the class entropy H(class)
// it is bounded by (I / H = 1: the class decides the expert... or the expert the
// class, when experts outnumber classes; 0: routing ignores the class).
struct ClassInformation {
  double bits = 0, class_entropy_bits = 0;
};
ClassInformation class_information(const ClassTable& t);

struct TraceLayerReport {
  std::string rule;
  int layer = 0;
  int64_t tokens = 0, choices = 0, dropped = 0;
  std::vector<int64_t> choices_per_expert;  // [E]
  std::vector<int64_t> histogram;           // experts per token: 0, 1, 2, 3, 4+
  std::vector<std::vector<PieceCount>> most_often;     // [E]: by count, then piece
  std::vector<std::vector<PieceCount>> most_exclusive;  // [E]: by count / occurrences, pieces seen ≥ min_occurrences
  ClassTable by_class, by_tag;  // by_tag empty without tags
};

struct TraceReport {
  std::string file, router, run, split;
  int64_t experts = 0, tokens = 0;
  bool tagged = false;
  std::vector<TraceLayerReport> layers;  // per rule, per layer
};

struct TraceReportOptions {
  int top = 6;                 // pieces listed per expert
  int64_t min_occurrences = 5;  // for the exclusive list
};

// Reads a trace and computes its tables. Throws Error(bad_input) naming the file and
// line of anything that is not a version-1 switchyard trace.
TraceReport read_trace_report(const std::string& path, const TraceReportOptions& opt = {});

// The token class of a piece's text ("▁The" → "capitalised word").
std::string piece_class(const std::string& piece);
// The coarse class of a Brown part-of-speech tag ("nns-tl" → "noun").
std::string tag_class(const std::string& tag);

std::string specialisation_markdown(const std::vector<TraceReport>& reports, bool with_plots);

// Writes <out>/specialisation.md (+ heat maps when plots); returns the exit code.
int write_trace_report(const std::vector<std::string>& traces, const std::string& out, bool plots);

}  // namespace sy
