#pragma once
// The deterministic data loader. A split of N tokens holds W = ⌊(N-1)/T⌋ windows of
// T+1 tokens (window w = tokens [w·T, w·T+T], inputs the first T, next-token
// targets the last T); the tail that does not fill a window is unused.
//
// Training: each epoch visits its windows in an order fixed by (seed, epoch). A
// global batch is G = batch × world × accum consecutive windows of that order, cut
// into world × accum slices of `batch` rows; micro-batch m of rank r is slice
// m·world + r. (So one rank accumulating k micro-batches sees exactly the data of k
// ranks taking one each.) An epoch has ⌊W / G⌋ batches; the windows left over
// (W mod G) are skipped in that epoch and reshuffled into the next (drop-last).
// So every window is seen at most once per epoch, by exactly one rank, and batch k
// depends only on (seed, k): the loader's whole state is the number of batches
// consumed.
//
// Evaluation: windows in order, ⌈W / G⌉ batches; rows past the last window carry
// no targets.
#include <cstdint>
#include <memory>
#include <vector>

#include "data/prepared.h"

namespace sy {

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual int64_t size() const = 0;
  virtual void read(int64_t start, int64_t n, int32_t* out) const = 0;
};

class MemoryTokens final : public TokenSource {
 public:
  explicit MemoryTokens(std::vector<int32_t> tokens) : tokens_(std::move(tokens)) {}
  int64_t size() const override { return static_cast<int64_t>(tokens_.size()); }
  void read(int64_t start, int64_t n, int32_t* out) const override;

 private:
  std::vector<int32_t> tokens_;
};

class ShardTokens final : public TokenSource {
 public:
  ShardTokens(const std::string& dir, const Manifest& m, const std::string& split,
              bool verify_checksums = true)
      : shards_(dir, m, split, verify_checksums) {}
  int64_t size() const override { return shards_.size(); }
  void read(int64_t start, int64_t n, int32_t* out) const override { shards_.read(start, n, out); }

 private:
  SplitShards shards_;
};

struct Batch {
  int64_t batch = 0, seq = 0;
  std::vector<int32_t> ids;      // [B, T]
  std::vector<int32_t> targets;  // [B, T]; -1 where there is no loss
  std::vector<int64_t> windows;  // [B]: the window of each row (-1: padding)
  int64_t first_row = 0;         // this slice's first row within the global batch
};

struct LoaderOptions {
  int64_t batch = 1;  // rows per rank
  int64_t seq = 1;
  int rank = 0, world = 1;
  int64_t accum = 1;  // micro-batches per rank per step
  uint64_t seed = 0;
  bool masked_lm = false;  // encoder objective (see mask_tokens)
  int64_t vocab = 0;
  int32_t mask_id = -1;
  double mask_prob = 0.15;
};

struct LoaderState {
  int64_t consumed = 0;  // global training batches (steps) fully handed out
  int64_t micro = 0;     // micro-batches of the current step handed out (0 between steps)
};

class Loader {
 public:
  // `what` names the data in errors ("split 'train' of data/prepared/brown").
  Loader(const TokenSource& tokens, const LoaderOptions& o, const std::string& what);

  int64_t windows() const { return windows_; }
  int64_t batches_per_epoch() const { return windows_ / global_batch(); }
  int64_t global_batch() const { return o_.batch * o_.world * o_.accum; }

  const Batch& next();  // this rank's next training micro-batch
  LoaderState state() const { return state_; }
  void restore(const LoaderState& s) { state_ = s; }
  int64_t epoch() const { return state_.consumed / batches_per_epoch(); }

  // Evaluation batches hold batch × world windows (no accumulation).
  int64_t eval_batches() const { return (windows_ + eval_batch_rows() - 1) / eval_batch_rows(); }
  const Batch& eval_batch(int64_t i);

 private:
  void fill_row(int64_t row, int64_t window, uint64_t mask_key);
  int64_t eval_batch_rows() const { return o_.batch * o_.world; }
  const std::vector<int64_t>& order_of(int64_t epoch);
  const TokenSource& tokens_;
  LoaderOptions o_;
  int64_t windows_;
  LoaderState state_;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
  std::vector<int32_t> window_;  // [T+1] scratch
  Batch b_;
};

// Masked-LM corruption of `ids` in place (BERT): each position is chosen with
// probability mask_prob; a chosen one becomes mask_id 80% of the time, a random
// token 10%, stays 10%; targets hold the original token at chosen positions and
// -1 elsewhere. Draws depend only on (seed, key, position).
void mask_tokens(int32_t* ids, int32_t* targets, int64_t n, int64_t vocab, int32_t mask_id,
                 double mask_prob, uint64_t seed, uint64_t key);

}  // namespace sy
