#pragma once
// Batches of windows from a token stream. Training windows start at offsets drawn
// from the counter-based RNG keyed by (seed, step, row), so batch `step` is the
// same whatever happened before it (a resumed run sees the same data).
// Evaluation windows are consecutive and fixed.
#include <cstdint>
#include <vector>


namespace sy {

struct Batch {
  int64_t batch = 0, seq = 0;
  std::vector<int32_t> ids;      // [B, T]
  std::vector<int32_t> targets;  // [B, T]; -1 where there is no loss
};

class Batcher {
 public:
  // masked_lm false: targets are the next tokens (decoder); true: masked LM (encoder,
  // see mask_tokens).
  Batcher(const std::vector<int32_t>& stream, int64_t batch, int64_t seq, bool masked_lm,
          int64_t vocab, double mask_prob, uint64_t seed);
  // Training batch number `step` (random windows).
  const Batch& train_batch(int64_t step);
  // Evaluation batch number `i` (consecutive windows, wrapping around).
  const Batch& eval_batch(int64_t i);
  int64_t windows() const;  // distinct non-overlapping windows in the stream

 private:
  void fill_row(int64_t row, int64_t start, uint64_t mask_key);
  const std::vector<int32_t>& stream_;
  bool masked_lm_;
  int64_t vocab_;
  double mask_prob_;
  uint64_t seed_;
  Batch b_;
};

// Masked-LM corruption of `ids` in place (BERT): each position is chosen with
// probability mask_prob; a chosen one becomes the mask token (vocab-1) 80% of the
// time, a random token 10%, stays 10%; targets hold the original token at chosen
// positions and -1 elsewhere. Draws depend only on (seed, key, position).
void mask_tokens(int32_t* ids, int32_t* targets, int64_t n, int64_t vocab, double mask_prob,
                 uint64_t seed, uint64_t key);

}  // namespace sy
