#include "data/corpus.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/errors.h"

namespace sy {
namespace fs = std::filesystem;
namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(ExitCode::bad_input, "corpus: cannot read '" + p.string() + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void check_utf8(const std::string& text, const std::string& where, int64_t base = 0) {
  const int64_t bad = first_invalid_utf8(text);
  if (bad >= 0)
    throw Error(ExitCode::bad_input, fmt::format("corpus: '{}' is not valid UTF-8 at byte offset {}",
                                                 where, base + bad));
}

void add_doc(std::vector<Document>& docs, std::string text, std::string origin) {
  const int64_t words = count_words(text);
  if (words == 0) return;  // blank documents carry nothing
  docs.push_back({std::move(text), std::move(origin), words});
}

void read_jsonl(const fs::path& p, std::vector<Document>& docs) {
  const std::string all = read_file(p);
  std::istringstream in(all);
  std::string line;
  int64_t lineno = 0, offset = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string where = p.string() + ":" + std::to_string(lineno);
    check_utf8(line, p.string(), offset);
    offset += static_cast<int64_t>(line.size()) + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(ExitCode::bad_input, "corpus: " + where + ": not valid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw Error(ExitCode::bad_input, "corpus: " + where + ": expected an object with a string field \"text\"");
    add_doc(docs, j["text"].get<std::string>(), where);
  }
}

// Documents separated by blank lines.
void read_text(const fs::path& p, std::vector<Document>& docs, bool one_document) {
  const std::string all = read_file(p);
  check_utf8(all, p.string());
  if (one_document) return add_doc(docs, all, p.string());
  std::istringstream in(all);
  std::string line, cur;
  int64_t lineno = 0, start = 1;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      if (!cur.empty()) add_doc(docs, std::move(cur), p.string() + ":" + std::to_string(start));
      cur.clear();
      start = lineno + 1;
    } else {
      cur += (cur.empty() ? "" : "\n") + line;
    }
  }
  if (!cur.empty()) add_doc(docs, std::move(cur), p.string() + ":" + std::to_string(start));
}

bool is_jsonl(const fs::path& p, CorpusFormat f) {
  return f == CorpusFormat::jsonl || (f == CorpusFormat::auto_detect && p.extension() == ".jsonl");
}

}  // namespace

int64_t first_invalid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const int64_t n = static_cast<int64_t>(s.size());
  for (int64_t i = 0; i < n;) {
    const unsigned char c = p[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > n) return i;
    for (int k = 1; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return i;
    // Overlong encodings, surrogates and code points past U+10FFFF are invalid too.
    if ((len == 2 && c < 0xC2) || (len == 3 && c == 0xE0 && p[i + 1] < 0xA0) ||
        (len == 3 && c == 0xED && p[i + 1] >= 0xA0) || (len == 4 && c == 0xF0 && p[i + 1] < 0x90) ||
        (len == 4 && (c > 0xF4 || (c == 0xF4 && p[i + 1] >= 0x90))))
      return i;
    i += len;
  }
  return -1;
}

int64_t count_words(const std::string& s) {
  int64_t words = 0;
  bool in_word = false;
  for (char ch : s) {
    const bool space = ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

std::vector<Document> read_corpus(const std::string& input, CorpusFormat format) {
  const fs::path root(input);
  std::error_code ec;
  if (input.empty() || !fs::exists(root, ec))
    throw Error(ExitCode::bad_input, "prepare.input: '" + input + "' does not exist");
  std::vector<Document> docs;
  if (fs::is_directory(root)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(root))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files)
      is_jsonl(f, format) ? read_jsonl(f, docs) : read_text(f, docs, /*one_document=*/true);
  } else {
    is_jsonl(root, format) ? read_jsonl(root, docs) : read_text(root, docs, /*one_document=*/false);
  }
  if (docs.empty())
    throw Error(ExitCode::bad_input, "prepare.input: '" + input + "' holds no text (empty corpus)");
  return docs;
}

}  // namespace sy
