#pragma once
// What a run ran on, recorded in <run>/hardware.json: floating-point results
// depend on it (BLAS kernels and thread counts sum in different orders), so a
// comparison of runs should know it (docs/STUDY.md, "Across machines").
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace sy {

// This machine: {"cpu": model name, "cores": logical cores, "host": host name}.
nlohmann::json this_machine();

// Adds a session {first_step, cpu, cores, host, backend, ranks} to
// <run_dir>/hardware.json unless the last one recorded ran on the same hardware
// (cpu, backend, ranks). Returns the file's content.
nlohmann::json record_hardware(const std::string& run_dir, int64_t first_step, const std::string& backend,
                               int ranks);

// What a report compares: "cpu · backend · N ranks".
std::string hardware_key(const nlohmann::json& session);

}  // namespace sy
