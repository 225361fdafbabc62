#pragma once
// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011). A draw is a
// pure function of (seed, stream, index): any random number in a run can be
// reproduced from its coordinates, in any order, on any rank or device.
#include <array>
#include <cstdint>

namespace sy {

using Philox4 = std::array<uint32_t, 4>;

// One Philox4x32-10 block: 4 random words for the 128-bit counter under a 64-bit key.
Philox4 philox4x32(Philox4 counter, uint64_t key);

// Streams name what a draw is for, so unrelated uses never share numbers.
struct RngStream {
  uint64_t seed = 0;
  uint64_t stream = 0;  // e.g. hash of a parameter name, or a (purpose, step) pair

  // 4 words for block `index`.
  Philox4 block(uint64_t index) const;
  // Uniform in [0, 1) with 24 random bits (exactly representable in fp32).
  float uniform(uint64_t index) const;
  // Uniform in [0, 1) with 53 random bits.
  double uniform_double(uint64_t index) const;
  // Standard normal (Box-Muller on two 32-bit draws of block `index`).
  double normal(uint64_t index) const;
  // Uniform integer in [0, n) (n > 0), for token ids and shuffles.
  uint64_t below(uint64_t index, uint64_t n) const;
};

// Stable 64-bit hash (FNV-1a) for naming streams from strings.
uint64_t hash64(const char* s);
// Mixes several counters into one stream id.
uint64_t mix64(uint64_t a, uint64_t b);

}  // namespace sy
