#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <filesystem>
#include <fstream>

#include "core/errors.h"
#include "core/sha256.h"
#include "data/shard.h"
#include "data/temp_dir.h"

namespace sy {
namespace {

std::string error_of(const std::string& path) {
  try {
    ShardReader r(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input);
    return e.what();
  }
  return "";
}

TEST(Shard, RoundTripNarrowAndWide) {
  test::TempDir dir;
  for (int64_t vocab : {300, 70000}) {
    std::vector<int32_t> tokens = {0, 5, 299, 7, 7, 1};
    if (vocab > 65536) tokens.push_back(69999);
    const std::vector<uint64_t> offsets = {0, 3, tokens.size()};
    const std::string path = dir.file("s.bin");
    write_shard(path, tokens, offsets, vocab);
    ShardReader r(path);
    EXPECT_EQ(r.bytes_per_token(), vocab > 65536 ? 4 : 2);
    EXPECT_EQ(r.vocab_size(), vocab);
    ASSERT_EQ(r.size(), static_cast<int64_t>(tokens.size()));
    std::vector<int32_t> back(tokens.size());
    r.read(0, r.size(), back.data());
    EXPECT_EQ(back, tokens);
    EXPECT_EQ(r.doc_count(), 2);
    EXPECT_EQ(r.doc_offset(1), 3u);
    EXPECT_EQ(r.max_token(), *std::max_element(tokens.begin(), tokens.end()));
  }
}

TEST(Shard, CorruptFilesAreRefusedWithTheirName) {
  test::TempDir dir;
  const std::string good = dir.file("good.bin");
  write_shard(good, {1, 2, 3, 4}, {0, 4}, 10);
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  std::string magic = bytes;
  magic[0] = 'X';
  const std::string m = error_of(dir.write("magic.bin", magic));
  EXPECT_NE(m.find("magic.bin': wrong magic at byte 0"), std::string::npos) << m;

  const std::string t = error_of(dir.write("trunc.bin", bytes.substr(0, bytes.size() - 3)));
  EXPECT_NE(t.find("trunc.bin': size"), std::string::npos) << t;
  EXPECT_NE(t.find("truncated or corrupt"), std::string::npos) << t;

  const std::string h = error_of(dir.write("header.bin", bytes.substr(0, 20)));
  EXPECT_NE(h.find("shorter than the 64-byte header"), std::string::npos) << h;

  std::string version = bytes;
  version[8] = 9;
  EXPECT_NE(error_of(dir.write("v.bin", version)).find("format version 9 at byte 8"), std::string::npos);

  EXPECT_NE(error_of(dir.file("absent.bin")).find("absent.bin': cannot open"), std::string::npos);
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string long_msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(long_msg.data(), long_msg.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million.data(), million.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace sy

namespace sy {
namespace {

// Fuzz: a shard mutated in its header, index and tokens; opening it and reading
// every token and document offset either works or throws Error(bad_input) naming
// the file. Fixed seed, bounded count.
TEST(Shard, FuzzedShardsAreRefusedCleanly) {
  test::TempDir dir;
  std::vector<int32_t> tokens;
  for (int i = 0; i < 300; ++i) tokens.push_back(i * 37 % 1000);
  const std::string path = dir.file("s.bin");
  write_shard(path, tokens, {0, 100, 250, 300}, 1000);
  std::string original;
  {
    std::ifstream in(path, std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::mt19937_64 rng(11);
  int refused = 0;
  for (int round = 0; round < 1500; ++round) {
    std::string s = original;
    // Header bytes are hit most: they decide every offset.
    const size_t at = rng() % 2 ? rng() % 64 : rng() % s.size();
    switch (rng() % 3) {
      case 0: s[at] = static_cast<char>(rng()); break;
      case 1: s.resize(rng() % s.size()); break;
      default: s[at] ^= static_cast<char>(1 << (rng() % 8)); break;
    }
    std::ofstream(path, std::ios::binary | std::ios::trunc) << s;
    try {
      ShardReader r(path);
      std::vector<int32_t> out(static_cast<size_t>(r.size()));
      r.read(0, r.size(), out.data());
      for (int64_t d = 0; d <= r.doc_count(); ++d) r.doc_offset(d);
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), ExitCode::bad_input) << e.what();
      ASSERT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      ++refused;
    }
  }
  EXPECT_GT(refused, 300);
}

}  // namespace
}  // namespace sy
