#pragma once
// `switchyard bench`: Google Benchmark runs of the machine's sgemm rate and of one
// training step of a config, then a summary (tokens/s, achieved GFLOP/s, MFU).
#include <string>
#include <vector>

#include "config/config.h"

namespace sy {

// benchmark_args: extra --benchmark_* flags passed through to Google Benchmark.
int run_bench(const Config& cfg, const std::vector<std::string>& benchmark_args);

}  // namespace sy
