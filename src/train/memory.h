#pragma once
// What a config needs in memory, estimated from its sizes before anything is
// allocated, and compared with what the machine has: a config whose tensors could
// never fit (a vocabulary of 1e9, a batch of 1e12) is bad input named by its sizes,
// not an allocation failure, an integer overflow or a process killed by the OS.
#include <cstdint>
#include <string>

#include "config/config.h"

namespace sy {

struct MemoryNeed {
  long double params = 0;       // parameter count on this rank (its share of the experts)
  long double state_bytes = 0;  // parameters, gradients and Adam's two moments
  long double activation_bytes = 0;  // one micro-batch's activations and scratch (estimate)
  long double data_bytes = 0;   // token streams held in memory (synthetic data)
  long double total() const { return state_bytes + activation_bytes + data_bytes; }
};

// Floating-point throughout: sizes whose products overflow int64 still compare.
MemoryNeed estimate_memory(const Config& cfg, int expert_parallel);
// Throws Error(bad_input) when the estimate exceeds `capacity_bytes` (the device's
// memory), with the sizes that drive it and what to lower.
void check_memory(const Config& cfg, int expert_parallel, uint64_t capacity_bytes,
                  const std::string& device);

}  // namespace sy
