#pragma once
// spdlog with a rank prefix. Rank 0 prints info to the console; every rank prints
// warnings and errors. A run directory adds a file sink (log.txt) on every rank.
#include <string>

#include <spdlog/spdlog.h>

namespace sy {

// Sets up the console logger for this rank. Call once, after MPI_Init.
void init_logging(int rank, int world, bool verbose = false);
// Adds `<path>` as a file sink (rank 0) or `<path>.rank-R` (other ranks).
void add_log_file(const std::string& path);
void flush_logs();

template <class... Args>
void log_info(spdlog::format_string_t<Args...> f, Args&&... args) {
  spdlog::info(f, std::forward<Args>(args)...);
}
template <class... Args>
void log_warn(spdlog::format_string_t<Args...> f, Args&&... args) {
  spdlog::warn(f, std::forward<Args>(args)...);
}
template <class... Args>
void log_error(spdlog::format_string_t<Args...> f, Args&&... args) {
  spdlog::error(f, std::forward<Args>(args)...);
}
template <class... Args>
void log_debug(spdlog::format_string_t<Args...> f, Args&&... args) {
  spdlog::debug(f, std::forward<Args>(args)...);
}

}  // namespace sy
