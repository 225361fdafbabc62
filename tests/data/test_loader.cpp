#include <gtest/gtest.h>

#include "core/sha256.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include "core/errors.h"
#include "data/loader.h"
#include "data/temp_dir.h"
#include "data/token_stream.h"

namespace sy {
namespace {

// Token i of an `arange` source is i, so a window's tokens name the window.
MemoryTokens arange(int64_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return MemoryTokens(std::move(v));
}

LoaderOptions opts(int64_t batch, int64_t seq, int rank, int world, uint64_t seed) {
  LoaderOptions o;
  o.batch = batch;
  o.seq = seq;
  o.rank = rank;
  o.world = world;
  o.seed = seed;
  o.vocab = 1 << 30;
  return o;
}

TEST(Loader, WindowsAreNextTokenPairs) {
  const MemoryTokens src = arange(1000);
  Loader l(src, opts(3, 16, 0, 1, 1), "arange");
  EXPECT_EQ(l.windows(), (1000 - 1) / 16);
  const Batch& b = l.next();
  for (int64_t r = 0; r < 3; ++r) {
    EXPECT_EQ(b.ids[r * 16], b.windows[r] * 16);
    for (int64_t t = 0; t < 16; ++t) EXPECT_EQ(b.targets[r * 16 + t], b.ids[r * 16 + t] + 1);
  }
}

// Every window exactly once per epoch across all ranks, none twice; order fixed by
// the seed and different for another seed.
TEST(Loader, EveryWindowOncePerEpochOnAnyNumberOfRanks) {
  const int64_t seq = 8, batch = 3;
  const MemoryTokens src = arange(8 * 97 + 1);  // 97 windows
  std::map<int, std::vector<int64_t>> first_epoch_order;
  for (int world : {1, 2, 4}) {
    std::vector<Loader> loaders;
    for (int r = 0; r < world; ++r) loaders.emplace_back(src, opts(batch, seq, r, world, 7), "arange");
    const int64_t per_epoch = loaders[0].batches_per_epoch();
    EXPECT_EQ(per_epoch, 97 / (batch * world));
    for (int epoch = 0; epoch < 2; ++epoch) {
      std::multiset<int64_t> seen;
      std::vector<int64_t> order;
      for (int64_t k = 0; k < per_epoch; ++k)
        for (int r = 0; r < world; ++r)
          for (int64_t w : loaders[r].next().windows) {
            seen.insert(w);
            order.push_back(w);
          }
      EXPECT_EQ(static_cast<int64_t>(seen.size()), per_epoch * batch * world);
      for (int64_t w : seen) EXPECT_EQ(seen.count(w), 1u) << "window " << w << " twice, world " << world;
      EXPECT_EQ(97 - static_cast<int64_t>(seen.size()), 97 % (batch * world)) << "drop-last rule";
      if (epoch == 0) first_epoch_order[world] = order;
    }
  }
  // The global order does not depend on how many ranks share it.
  EXPECT_EQ(std::vector<int64_t>(first_epoch_order[1].begin(), first_epoch_order[1].begin() + 24),
            std::vector<int64_t>(first_epoch_order[2].begin(), first_epoch_order[2].begin() + 24));
  Loader a(src, opts(batch, seq, 0, 1, 7), "arange"), b(src, opts(batch, seq, 0, 1, 8), "arange");
  EXPECT_NE(a.next().windows, b.next().windows);
}

// The same coverage through real token shards: an arange split cut into three
// shards, so windows straddle shard boundaries.
// A uint32 shard holding an id beyond int32's range (it would read as negative):
// refused at load, naming the file and the byte offset; an id ≥ the vocabulary too.
TEST(Loader, ShardIdsOutsideTheVocabularyAreRefusedAtLoad) {
  test::TempDir dir;
  for (int64_t bad : {int64_t{0xFFFFFFF0}, int64_t{100000}}) {
    Manifest m;
    m.vocab_size = 100000;  // > 65535: 4 bytes per token
    std::vector<int32_t> tokens = {1, 2, 3, static_cast<int32_t>(static_cast<uint32_t>(bad)), 5};
    write_shard(dir.file("train-00000.bin"), tokens, {0, tokens.size()}, m.vocab_size);
    m.splits["train"].shards.push_back({"train-00000.bin", sha256_file(dir.file("train-00000.bin")), 5, 1});
    m.splits["train"].tokens = 5;
    try {
      ShardTokens src(dir.path.string(), m, "train");
      ADD_FAILURE() << "id " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::bad_input);
      const std::string want = fmt::format("train-00000.bin': token id {} at token 3 (byte offset {}) is "
                                           "outside the vocabulary [0, 100000)", bad, 64 + 3 * 4);
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  }
}

TEST(Loader, ShardedArangeCoversEveryWindowOnce) {
  test::TempDir dir;
  Manifest m;
  m.vocab_size = 100000;
  SplitInfo& train = m.splits["train"];
  const int64_t n = 6 * 50 + 1;  // 50 windows of 6
  const int64_t cuts[] = {0, 77, 200, n};
  for (int s = 0; s < 3; ++s) {
    std::vector<int32_t> tokens;
    for (int64_t i = cuts[s]; i < cuts[s + 1]; ++i) tokens.push_back(static_cast<int32_t>(i));
    const std::string file = "train-0000" + std::to_string(s) + ".bin";
    write_shard(dir.file(file), tokens, {0, tokens.size()}, m.vocab_size);
    train.shards.push_back({file, sha256_file(dir.file(file)), static_cast<int64_t>(tokens.size()), 1});
    train.tokens += static_cast<int64_t>(tokens.size());
  }
  const ShardTokens src(dir.path.string(), m, "train");
  ASSERT_EQ(src.size(), n);
  for (int world : {1, 2, 4}) {
    std::set<int64_t> seen;
    for (int r = 0; r < world; ++r) {
      Loader l(src, opts(2, 6, r, world, 11), "sharded arange");
      for (int64_t k = 0; k < l.batches_per_epoch(); ++k) {
        const Batch& b = l.next();
        for (int64_t row = 0; row < 2; ++row) {
          EXPECT_TRUE(seen.insert(b.windows[row]).second) << "window twice, world " << world;
          for (int64_t t = 0; t < 6; ++t) {
            ASSERT_EQ(b.ids[row * 6 + t], b.windows[row] * 6 + t);
            ASSERT_EQ(b.targets[row * 6 + t], b.windows[row] * 6 + t + 1);
          }
        }
      }
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), 50 - 50 % (2 * world));
  }
}

TEST(Loader, EpochsReshuffle) {
  const MemoryTokens src = arange(4 * 64 + 1);
  Loader l(src, opts(8, 4, 0, 1, 3), "arange");
  std::vector<int64_t> e0, e1;
  for (int k = 0; k < 8; ++k) for (int64_t w : l.next().windows) e0.push_back(w);
  EXPECT_EQ(l.epoch(), 1);
  for (int k = 0; k < 8; ++k) for (int64_t w : l.next().windows) e1.push_back(w);
  EXPECT_NE(e0, e1);
  std::sort(e0.begin(), e0.end());
  std::sort(e1.begin(), e1.end());
  EXPECT_EQ(e0, e1);
}

TEST(Loader, RestoredStateContinuesBitIdentically) {
  const MemoryTokens src = arange(16 * 50 + 1);
  Loader uninterrupted(src, opts(4, 16, 0, 1, 9), "arange");
  for (int k = 0; k < 17; ++k) uninterrupted.next();
  const LoaderState saved = uninterrupted.state();
  EXPECT_EQ(saved.consumed, 17);
  Loader resumed(src, opts(4, 16, 0, 1, 9), "arange");
  resumed.restore(saved);
  for (int k = 0; k < 20; ++k) {
    const Batch& a = uninterrupted.next();
    const Batch& b = resumed.next();
    ASSERT_EQ(a.ids, b.ids) << "batch " << 17 + k;
    ASSERT_EQ(a.targets, b.targets);
  }
}

TEST(Loader, EvaluationCoversEveryWindowOnce) {
  const MemoryTokens src = arange(10 * 23 + 5);  // 23 windows
  for (int world : {1, 2}) {
    std::multiset<int64_t> seen;
    for (int r = 0; r < world; ++r) {
      Loader l(src, opts(4, 10, r, world, 1), "arange");
      for (int64_t i = 0; i < l.eval_batches(); ++i) {
        const Batch& b = l.eval_batch(i);
        for (int64_t row = 0; row < 4; ++row) {
          if (b.windows[row] < 0) {
            for (int64_t t = 0; t < 10; ++t) EXPECT_EQ(b.targets[row * 10 + t], -1);
            continue;
          }
          seen.insert(b.windows[row]);
        }
      }
    }
    EXPECT_EQ(seen.size(), 23u);
    EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 23u);
  }
}

TEST(Loader, TooLittleDataIsABadInput) {
  const MemoryTokens tiny = arange(10);
  EXPECT_THROW(Loader(tiny, opts(1, 16, 0, 1, 1), "tiny"), Error);
  const MemoryTokens small = arange(3 * 16 + 1);  // 3 windows
  Loader l(small, opts(4, 16, 0, 1, 1), "small");
  try {
    l.next();
    FAIL() << "a batch bigger than the data must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input);
    EXPECT_NE(std::string(e.what()).find("fewer than one global batch"), std::string::npos);
  }
}

TEST(Masking, RatesAndTargetsFollowBert) {
  const int64_t n = 200000, V = 100;
  std::vector<int32_t> ids(n), orig(n), tg(n);
  for (int64_t i = 0; i < n; ++i) orig[i] = ids[i] = tg[i] = static_cast<int32_t>(i % 90);
  mask_tokens(ids.data(), tg.data(), n, V, 95, 0.15, 3, 0);
  int64_t chosen = 0, masked = 0, kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (tg[i] < 0) {
      EXPECT_EQ(ids[i], orig[i]);
      continue;
    }
    EXPECT_EQ(tg[i], orig[i]);
    ++chosen;
    masked += ids[i] == 95;
    kept += ids[i] == orig[i];
  }
  EXPECT_NEAR(chosen / double(n), 0.15, 0.005);
  EXPECT_NEAR(masked / double(chosen), 0.8, 0.01);
  EXPECT_NEAR(kept / double(chosen), 0.1 + 0.1 / V, 0.01);
  std::vector<int32_t> ids2 = orig, tg2 = orig;
  mask_tokens(ids2.data(), tg2.data(), n, V, 95, 0.15, 3, 0);
  EXPECT_EQ(ids, ids2);  // same seed and key: same masks
  std::vector<int32_t> ids3 = orig, tg3 = orig;
  mask_tokens(ids3.data(), tg3.data(), n, V, 95, 0.15, 3, 1);
  EXPECT_NE(ids, ids3);
}

TEST(Masking, EncoderBatchesMaskOnlyWhatTheyScore) {
  const MemoryTokens src = arange(32 * 40 + 1);
  LoaderOptions o = opts(4, 32, 0, 1, 5);
  o.masked_lm = true;
  o.mask_id = (1 << 30) - 1;
  Loader l(src, o, "arange");
  const Batch& b = l.next();
  int64_t scored = 0;
  for (size_t i = 0; i < b.ids.size(); ++i)
    if (b.targets[i] >= 0) {
      ++scored;
      EXPECT_EQ(b.targets[i], b.windows[i / 32] * 32 + static_cast<int64_t>(i % 32));
    }
  EXPECT_GT(scored, 0);
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
