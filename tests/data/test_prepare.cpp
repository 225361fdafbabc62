// Corpus reading, tokenizer round trip, and `prepare` end to end on a small
// generated corpus, with every bad-input case the data path names.
#include <gtest/gtest.h>

#include <fstream>

#include <filesystem>

#include "core/errors.h"
#include "core/rng.h"
#include "data/corpus.h"
#include "data/dataset.h"
#include "data/prepare.h"
#include "data/temp_dir.h"
#include "data/tokenizer.h"

namespace sy {
namespace {

// n documents of pseudo-words (1-3 syllables), sentences of 12 words and a ".",
// documents separated by blank lines.
std::string make_corpus(int n_docs, uint64_t seed) {
  static const char* syllables[] = {"ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "de", "pa", "gu", "be"};
  const RngStream r{seed, 1};
  std::string text;
  uint64_t k = 0;
  for (int d = 0; d < n_docs; ++d) {
    for (int s = 0; s < 5; ++s)
      for (int w = 0; w < 12; ++w) {
        const uint64_t n = 1 + r.below(k++, 3);
        for (uint64_t i = 0; i < n; ++i) text += syllables[r.below(k++, 12)];
        text += w < 11 ? " " : " .\n";
      }
    text += "\n";
  }
  return text;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input) << e.what();
    return e.what();
  }
  return "";
}

PrepareConfig prep(const std::string& input) {
  PrepareConfig p;
  p.input = input;
  p.val_fraction = 0.1;
  p.test_fraction = 0.1;
  return p;
}

TEST(Corpus, ReadsTextFilesFoldersAndJsonl) {
  test::TempDir dir;
  const auto docs = read_corpus(dir.write("c.txt", "one two\nthree\n\n\nfour five six\n"), CorpusFormat::auto_detect);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].words, 3);
  EXPECT_EQ(docs[1].origin, dir.file("c.txt") + ":5");
  dir.write("folder/b.txt", "beta gamma\n\nstill beta");
  dir.write("folder/a.txt", "alpha");
  dir.write("folder/.hidden", "ignored");
  const auto f = read_corpus(dir.file("folder"), CorpusFormat::auto_detect);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].text, "alpha");  // path order, one document per file
  EXPECT_EQ(f[1].words, 4);
  const auto j = read_corpus(dir.write("d.jsonl", "{\"text\": \"x y\"}\n\n{\"text\": \"z\", \"id\": 3}\n"),
                             CorpusFormat::auto_detect);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[1].origin, dir.file("d.jsonl") + ":3");
}

TEST(Corpus, BadInputNamesTheFileAndPlace) {
  test::TempDir dir;
  EXPECT_NE(error_of([&] { read_corpus(dir.file("nope.txt"), CorpusFormat::auto_detect); })
                .find("nope.txt' does not exist"), std::string::npos);
  EXPECT_NE(error_of([&] { read_corpus(dir.write("empty.txt", "\n \n"), CorpusFormat::auto_detect); })
                .find("holds no text (empty corpus)"), std::string::npos);
  const std::string utf8 = error_of([&] {
    read_corpus(dir.write("bad.txt", "good text\nbad \xC3\x28 here"), CorpusFormat::auto_detect);
  });
  EXPECT_NE(utf8.find("bad.txt' is not valid UTF-8 at byte offset 14"), std::string::npos) << utf8;
  const std::string js = error_of([&] {
    read_corpus(dir.write("bad.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n"), CorpusFormat::auto_detect);
  });
  EXPECT_NE(js.find("bad.jsonl:2: expected an object with a string field \"text\""), std::string::npos) << js;
  EXPECT_NE(error_of([&] { read_corpus(dir.write("x.jsonl", "{oops\n"), CorpusFormat::auto_detect); })
                .find("x.jsonl:1: not valid JSON"), std::string::npos);
}

TEST(Utf8, Validation) {
  EXPECT_EQ(first_invalid_utf8("plain ascii"), -1);
  EXPECT_EQ(first_invalid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), -1);  // é € 😀
  EXPECT_EQ(first_invalid_utf8("ab\xC0\xAF"), 2);       // overlong '/'
  EXPECT_EQ(first_invalid_utf8("\xED\xA0\x80"), 0);     // UTF-16 surrogate
  EXPECT_EQ(first_invalid_utf8("ok\xE2\x82"), 2);       // truncated sequence
  EXPECT_EQ(first_invalid_utf8("\xF4\x90\x80\x80"), 0); // past U+10FFFF
}

TEST(Prepare, EndToEndWithTokenizerRoundTrip) {
  test::TempDir dir;
  const PrepareConfig p = prep(dir.write("corpus.txt", make_corpus(60, 1)));
  const Manifest m = prepare_dataset(p, dir.file("out"), 96, 42, 1);
  EXPECT_EQ(m.splits.at("train").documents + m.splits.at("val").documents + m.splits.at("test").documents, 60);
  EXPECT_EQ(m.splits.at("val").documents, 6);
  EXPECT_EQ(m.splits.at("train").words + m.splits.at("val").words + m.splits.at("test").words, 60 * 5 * 13);
  EXPECT_GE(m.mask_id, 0);

  Tokenizer tok(dir.file("out/tokenizer.model"));
  EXPECT_EQ(tok.vocab_size(), 96);
  std::vector<int32_t> ids;
  tok.encode("kalo mineru tasovi depa gube .", ids);
  EXPECT_EQ(tok.decode(ids), "kalo mineru tasovi depa gube .");

  // Reopened from disk: same manifest, shards agree with it.
  const Manifest again = Manifest::load(dir.file("out"));
  EXPECT_EQ(again.to_json(), m.to_json());
  DataConfig d;
  d.source = DataSource::prepared;
  d.path = dir.file("out");
  const Dataset ds = open_dataset(d, 96, 0, "test");
  EXPECT_EQ(ds.train->size(), m.splits.at("train").tokens);
  EXPECT_EQ(ds.eval->size(), m.splits.at("test").tokens);
  std::vector<int32_t> first(4);
  ds.train->read(0, 4, first.data());
  for (int32_t t : first) EXPECT_LT(t, 96);

  // The same seed splits the same way.
  const Manifest m2 = prepare_dataset(p, dir.file("out2"), 96, 42, 1);
  EXPECT_EQ(m2.splits.at("val").tokens, m.splits.at("val").tokens);
}

TEST(Prepare, BpeTokenizerAndReusingAGivenOne) {
  test::TempDir dir;
  PrepareConfig p = prep(dir.write("corpus.txt", make_corpus(40, 4)));
  p.tokenizer = TokenizerKind::bpe;
  const Manifest bpe = prepare_dataset(p, dir.file("bpe"), 90, 7, 1);
  EXPECT_EQ(bpe.tokenizer_kind, "bpe");
  // Reuse it: no training, the same tokens.
  PrepareConfig reuse = p;
  reuse.tokenizer_model = dir.file("bpe/tokenizer.model");
  const Manifest again = prepare_dataset(reuse, dir.file("reuse"), 90, 7, 1);
  EXPECT_EQ(again.tokenizer_kind, "given");
  EXPECT_EQ(again.tokenizer_sha256, bpe.tokenizer_sha256);
  EXPECT_EQ(again.splits.at("train").shards[0].sha256, bpe.splits.at("train").shards[0].sha256);
  // A given tokenizer whose size disagrees with the model is refused.
  const std::string e = error_of([&] { prepare_dataset(reuse, dir.file("bad"), 128, 7, 1); });
  EXPECT_NE(e.find("has 90 pieces but model.vocab_size is 128"), std::string::npos) << e;
}

TEST(Prepare, BadInputs) {
  test::TempDir dir;
  const std::string corpus = dir.write("corpus.txt", make_corpus(30, 2));
  const std::string vocab = error_of([&] { prepare_dataset(prep(corpus), dir.file("o1"), 50000, 1, 1); });
  EXPECT_NE(vocab.find("Vocabulary size"), std::string::npos) << vocab;
  EXPECT_NE(vocab.find("lower model.vocab_size"), std::string::npos) << vocab;
  EXPECT_NE(error_of([&] { prepare_dataset(prep(dir.write("two.txt", "a b\n\nc d\n")), dir.file("o2"), 32, 1, 1); })
                .find("too few to split"), std::string::npos);

  // A dataset whose vocabulary disagrees with the model, and damaged shards.
  prepare_dataset(prep(corpus), dir.file("ok"), 80, 1, 1);
  DataConfig d;
  d.source = DataSource::prepared;
  d.path = dir.file("ok");
  const std::string mismatch = error_of([&] { open_dataset(d, 64, 0); });
  EXPECT_NE(mismatch.find("prepared with a 80-piece tokenizer, but model.vocab_size is 64"), std::string::npos) << mismatch;
  std::filesystem::remove(dir.file("ok/val-00000.bin"));
  EXPECT_NE(error_of([&] { open_dataset(d, 80, 0); }).find("val-00000.bin': cannot open"), std::string::npos);
  d.path = dir.file("nowhere");
  EXPECT_NE(error_of([&] { open_dataset(d, 80, 0); }).find("run `switchyard prepare"), std::string::npos);
}

TEST(Prepare, TokenIdsBeyondTheVocabularyAreRefused) {
  test::TempDir dir;
  prepare_dataset(prep(dir.write("corpus.txt", make_corpus(30, 3))), dir.file("ds"), 80, 1, 1);
  // Rewrite the train shard with an id ≥ vocab, keeping the manifest's counts.
  ShardReader r(dir.file("ds/train-00000.bin"));
  std::vector<int32_t> tokens(static_cast<size_t>(r.size()));
  r.read(0, r.size(), tokens.data());
  std::vector<uint64_t> offsets;
  for (int64_t i = 0; i <= r.doc_count(); ++i) offsets.push_back(r.doc_offset(i));
  tokens[5] = 81;
  write_shard(dir.file("ds/train-00000.bin"), tokens, offsets, 80);
  DataConfig d;
  d.source = DataSource::prepared;
  d.path = dir.file("ds");
  // The rewrite is caught by the manifest's checksum first, naming the shard...
  std::string e = error_of([&] { open_dataset(d, 80, 0); });
  EXPECT_NE(e.find("train-00000.bin' does not match manifest.json: SHA-256"), std::string::npos) << e;
  // ...and without checksums, by the id check, with the file and the byte offset.
  d.verify_checksums = false;
  e = error_of([&] { open_dataset(d, 80, 0); });
  EXPECT_NE(e.find("token id 81 at token 5 (byte offset 74) is outside the vocabulary [0, 80)"),
            std::string::npos) << e;
}

// A shard rewritten after prepare with the same sizes (a flipped token that stays
// inside the vocabulary) is used by nothing: its checksum no longer matches.
TEST(Prepare, ShardsRewrittenAfterPrepareAreRefused) {
  test::TempDir dir;
  prepare_dataset(prep(dir.write("corpus.txt", make_corpus(30, 3))), dir.file("ds"), 80, 1, 1);
  const std::string shard = dir.file("ds/train-00000.bin");
  std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(64 + 2 * 3);
  const char token[2] = {7, 0};  // id 7: inside the vocabulary
  f.write(token, 2);
  f.close();
  DataConfig d;
  d.source = DataSource::prepared;
  d.path = dir.file("ds");
  const std::string e = error_of([&] { open_dataset(d, 80, 0); });
  EXPECT_NE(e.find("does not match manifest.json"), std::string::npos) << e;
  d.verify_checksums = false;  // the opt-out: sizes and ids only
  EXPECT_NO_THROW(open_dataset(d, 80, 0));
}

}  // namespace
}  // namespace sy
