#pragma once
// The data section of a config, validated where it is defined.
#include <cstdint>
#include <string>

#include "core/problems.h"

namespace sy {

enum class DataSource {
  prepared,   // token shards written by `switchyard prepare` (data.path: their folder)
  synthetic,  // a seeded order-1 Markov chain over the vocabulary (no files needed)
  bytes,      // a UTF-8 text file read as bytes (vocabulary 256)
};

struct DataConfig {
  DataSource source = DataSource::synthetic;
  std::string path;                 // prepared: the folder with manifest.json; bytes: the file
  int64_t synthetic_tokens = 1 << 20;
  int64_t synthetic_branching = 4;  // successors per token in the Markov chain
  double eval_fraction = 0.1;       // synthetic, bytes: tail held out for evaluation
  double mask_prob = 0.15;          // encoder (masked LM) only
  // prepared: check every shard's SHA-256 against manifest.json at start (a full
  // read of the data; off: sizes and counts only).
  bool verify_checksums = true;

  void validate(Problems& p) const;
};

enum class CorpusFormat { auto_detect, text, jsonl };
enum class TokenizerKind { unigram, bpe };

// `switchyard prepare`: corpus → tokenizer + token shards in data.path.
struct PrepareConfig {
  std::string input;            // a file or folder (see data/corpus.h)
  CorpusFormat format = CorpusFormat::auto_detect;
  TokenizerKind tokenizer = TokenizerKind::unigram;  // trained with vocab model.vocab_size
  std::string tokenizer_model;  // reuse this SentencePiece model instead of training one
  double val_fraction = 0.05;   // documents held out, split by document with the seed
  double test_fraction = 0.05;
  int64_t max_shard_tokens = int64_t{1} << 26;
  double character_coverage = 1.0;
  // A tag per word of `input` (same files, documents and word counts; Brown's
  // part-of-speech tags from scripts/fetch_brown.sh): carried to every token of
  // the word, for the routing report (docs/trace.md). Empty: none.
  std::string tags;

  void validate(Problems& p) const;
};

}  // namespace sy
