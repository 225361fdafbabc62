#include <gtest/gtest.h>

#include "data/batcher.h"
#include "data/token_stream.h"

namespace sy {
namespace {

std::vector<int32_t> counting(int n) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = i % 1000;
  return v;
}

TEST(Batcher, DecoderTargetsAreTheNextTokens) {
  const auto s = counting(5000);
  Batcher b(s, 3, 16, false, 1000, 0.15, 1);
  const Batch& x = b.train_batch(0);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t t = 0; t < 16; ++t)
      EXPECT_EQ(x.targets[r * 16 + t], (x.ids[r * 16 + t] + 1) % 1000);
}

TEST(Batcher, BatchDependsOnlyOnSeedAndStep) {
  const auto s = counting(5000);
  Batcher a(s, 2, 8, false, 1000, 0.15, 1), b(s, 2, 8, false, 1000, 0.15, 1),
      c(s, 2, 8, false, 1000, 0.15, 2);
  a.train_batch(0);
  const std::vector<int32_t> a5 = a.train_batch(5).ids;
  EXPECT_EQ(a5, b.train_batch(5).ids);  // b never saw steps 0..4
  EXPECT_NE(a5, c.train_batch(5).ids);
  EXPECT_NE(a5, a.train_batch(6).ids);
}

TEST(Masking, RatesAndTargetsFollowBert) {
  const int64_t n = 200000, V = 100;
  std::vector<int32_t> ids(n), orig(n), tg(n);
  for (int64_t i = 0; i < n; ++i) orig[i] = ids[i] = tg[i] = static_cast<int32_t>(i % 90);
  mask_tokens(ids.data(), tg.data(), n, V, 0.15, 3, 0);
  int64_t chosen = 0, masked = 0, kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (tg[i] < 0) {
      EXPECT_EQ(ids[i], orig[i]);
      continue;
    }
    EXPECT_EQ(tg[i], orig[i]);
    ++chosen;
    masked += ids[i] == V - 1;
    kept += ids[i] == orig[i];
  }
  EXPECT_NEAR(chosen / double(n), 0.15, 0.005);
  EXPECT_NEAR(masked / double(chosen), 0.8, 0.01);
  EXPECT_NEAR(kept / double(chosen), 0.1 + 0.1 / V, 0.01);
  // Same seed and key: same masks.
  std::vector<int32_t> ids2 = orig, tg2 = orig;
  mask_tokens(ids2.data(), tg2.data(), n, V, 0.15, 3, 0);
  EXPECT_EQ(ids, ids2);
}

TEST(Synthetic, StreamIsDeterministicAndSplit) {
  DataConfig d;
  d.synthetic_tokens = 10000;
  const TokenStreams a = make_synthetic_streams(d, 64, 5), b = make_synthetic_streams(d, 64, 5);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.train.size() + a.eval.size(), 10000u);
  EXPECT_EQ(a.eval.size(), 1000u);
  EXPECT_GT(a.entropy_bits, 0.0);
  EXPECT_LT(a.entropy_bits, 2.0 + 1e-9);  // at most log2(4 successors)
}

}  // namespace
}  // namespace sy
