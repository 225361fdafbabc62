#include "core/log.h"

#include <memory>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace sy {
namespace {
int g_rank = 0;
}

void init_logging(int rank, int world, bool verbose) {
  g_rank = rank;
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_level(rank == 0 ? (verbose ? spdlog::level::debug : spdlog::level::info)
                               : spdlog::level::warn);
  auto logger = std::make_shared<spdlog::logger>("switchyard", console);
  logger->set_level(spdlog::level::debug);
  const std::string prefix = world > 1 ? fmt::format("[rank {}] ", rank) : "";
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] " + prefix + "%v");
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

void add_log_file(const std::string& path) {
  const std::string file = g_rank == 0 ? path : path + ".rank-" + std::to_string(g_rank);
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, /*truncate=*/false);
  sink->set_level(spdlog::level::debug);
  sink->set_pattern(fmt::format("[%Y-%m-%d %H:%M:%S.%e] [%l] [rank {}] %v", g_rank));
  spdlog::default_logger()->sinks().push_back(sink);
}

void flush_logs() {
  if (auto l = spdlog::default_logger()) l->flush();
}

}  // namespace sy
