#pragma once
// Philox4x32-10 (Salmon et al. 2011) as inline functions that compile for the host
// and, under nvcc, for the device: the one definition behind RngStream (rng.h) and
// behind draws made by backend code on the backend's own memory, so a number drawn
// on a GPU is the number the host would draw at the same coordinates.
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SY_HOST_DEVICE __host__ __device__
#else
#define SY_HOST_DEVICE
#endif

namespace sy::philox {

struct Block {
  uint32_t w[4];
};

SY_HOST_DEVICE inline Block rounds(Block c, uint64_t key) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c.w[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c.w[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c = Block{{hi1 ^ c.w[1] ^ k0, lo1, hi0 ^ c.w[3] ^ k1, lo0}};
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return c;
}

// The block of (seed, stream, index): the counter is (index, stream), the key the seed.
SY_HOST_DEVICE inline Block block(uint64_t seed, uint64_t stream, uint64_t index) {
  const Block counter{{static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                       static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)}};
  return rounds(counter, seed);
}

// Uniform in [0, 1) with 24 random bits (exactly representable in fp32).
SY_HOST_DEVICE inline float uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<float>(block(seed, stream, index).w[0] >> 8) * (1.0f / 16777216.0f);
}

// Uniform in [0, 1) with 53 random bits.
SY_HOST_DEVICE inline double uniform_double(uint64_t seed, uint64_t stream, uint64_t index) {
  const Block b = block(seed, stream, index);
  const uint64_t bits = (static_cast<uint64_t>(b.w[0]) << 21) ^ (b.w[1] >> 11);
  return static_cast<double>(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Standard normal by Box-Muller on the block's first two words (u1 in (0, 1], so
// the log is finite).
SY_HOST_DEVICE inline double normal(uint64_t seed, uint64_t stream, uint64_t index) {
  const Block b = block(seed, stream, index);
  const double u1 = (static_cast<double>(b.w[0]) + 1.0) * (1.0 / 4294967296.0);
  const double u2 = static_cast<double>(b.w[1]) * (1.0 / 4294967296.0);
  return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

}  // namespace sy::philox
