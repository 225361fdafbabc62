#include "core/rng.h"

#include "core/philox.h"

#include <cmath>

namespace sy {

Philox4 philox4x32(Philox4 c, uint64_t key) {
  const philox::Block b = philox::rounds(philox::Block{{c[0], c[1], c[2], c[3]}}, key);
  return {b.w[0], b.w[1], b.w[2], b.w[3]};
}

Philox4 RngStream::block(uint64_t index) const {
  const Philox4 counter = {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                           static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)};
  return philox4x32(counter, seed);
}

float RngStream::uniform(uint64_t index) const { return philox::uniform(seed, stream, index); }

double RngStream::uniform_double(uint64_t index) const { return philox::uniform_double(seed, stream, index); }

double RngStream::normal(uint64_t index) const { return philox::normal(seed, stream, index); }

uint64_t RngStream::below(uint64_t index, uint64_t n) const {
  const Philox4 b = block(index);
  const uint64_t x = (static_cast<uint64_t>(b[0]) << 32) | b[1];
  // 128-bit multiply-shift: unbiased enough for n << 2^64 (bias < n / 2^64).
  return static_cast<uint64_t>((static_cast<unsigned __int128>(x) * n) >> 64);
}

uint64_t hash64(const char* s) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64-bit offset basis
  for (; *s; ++s) {
    h ^= static_cast<unsigned char>(*s);
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t mix64(uint64_t a, uint64_t b) {
  // splitmix64 finaliser over a combination of both.
  uint64_t z = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace sy
