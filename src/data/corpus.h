#pragma once
// Reading a corpus into documents: a folder (one document per file, recursively,
// in path order; .jsonl files inside are read as JSONL), a JSONL file (one
// document per line, its "text" field), or a plain text file (documents separated
// by blank lines). Text must be valid UTF-8.
#include <cstdint>
#include <string>
#include <vector>

#include "data/data_config.h"

namespace sy {

struct Document {
  std::string text;
  std::string origin;  // "file" or "file:line"
  int64_t words = 0;   // whitespace-separated tokens
};

// Throws Error(bad_input) naming the file (and line / byte offset) on missing or
// empty input, invalid UTF-8, or JSONL without a string "text" field.
std::vector<Document> read_corpus(const std::string& input, CorpusFormat format);

// Byte offset of the first invalid UTF-8 sequence, or -1 if `s` is valid.
int64_t first_invalid_utf8(const std::string& s);
int64_t count_words(const std::string& s);

}  // namespace sy
