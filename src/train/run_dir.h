#pragma once
// What a run directory already holds (a new run must not overwrite an old one),
// and moving an old run aside when a fresh start is asked for. (Its lock:
// core/dir_lock.h.)
#include <string>
#include <vector>

namespace sy {

// Files that show a directory already holds a run (checkpoints, metrics, weights,
// its config), for messages; empty when it holds none.
std::vector<std::string> existing_run_files(const std::string& dir);
// Moves those files into <dir>/replaced-<UTC time>/ and returns that folder.
std::string move_run_aside(const std::string& dir);

}  // namespace sy
