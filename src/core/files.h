#pragma once
// Small files written whole: a reader sees the old content or the new, never half.
#include <string>

namespace sy {

// Writes `text` to `path` via `path`.tmp and a rename; throws Error(bad_input)
// saying why not (disk full, read-only).
void write_text_file(const std::string& path, const std::string& text);

}  // namespace sy
