#pragma once
// bfloat16 rounding: the fp32 value nearest to x among those with 8 mantissa bits
// (round to nearest, ties to even), as a tensor core's bf16 operand holds it.
// NaN stays NaN, ±inf stays ±inf; a finite value past bf16's largest rounds to inf.
#include <cstdint>
#include <cstring>

namespace sy {

inline float round_to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u) {  // inf or NaN: keep it (NaN quiet)
    if (u & 0x007fffffu) u |= 0x00400000u;
  } else {
    u += 0x7fffu + ((u >> 16) & 1u);
  }
  u &= 0xffff0000u;
  float y;
  std::memcpy(&y, &u, sizeof y);
  return y;
}

}  // namespace sy
