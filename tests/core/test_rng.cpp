#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/rng.h"

namespace sy {
namespace {

// Known-answer vectors of Philox4x32-10 (Salmon et al., Random123 kat_vectors).
TEST(Philox, KnownAnswers) {
  EXPECT_EQ(philox4x32({0, 0, 0, 0}, 0),
            (Philox4{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, 0xffffffffffffffffull),
            (Philox4{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                       0x299f31d0a4093822ull),
            (Philox4{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(RngStream, DrawIsAPureFunctionOfItsCoordinates) {
  const RngStream a{42, 7}, b{42, 7}, other_seed{43, 7}, other_stream{42, 8};
  EXPECT_EQ(a.uniform(123), b.uniform(123));
  EXPECT_EQ(a.normal(5), b.normal(5));
  EXPECT_NE(a.block(123), other_seed.block(123));
  EXPECT_NE(a.block(123), other_stream.block(123));
  EXPECT_NE(a.block(123), a.block(124));
}

TEST(RngStream, MomentsAreRight) {
  const RngStream r{1, 2};
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; ++i) {
    const float u = r.uniform(i);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    su += u;
    const double z = r.normal(i);
    sn += z;
    sn2 += z * z;
  }
  EXPECT_NEAR(su / n, 0.5, 0.005);
  EXPECT_NEAR(sn / n, 0.0, 0.01);
  EXPECT_NEAR(sn2 / n, 1.0, 0.02);
}

TEST(RngStream, BelowCoversTheRange) {
  const RngStream r{3, 4};
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t v = r.below(i, 7);
    ASSERT_LT(v, 7u);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 7u);
}

TEST(Hash, StableAcrossRuns) {
  EXPECT_EQ(hash64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(hash64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_NE(mix64(1, 2), mix64(2, 1));
}

}  // namespace
}  // namespace sy
