#include "data/batcher.h"

#include "core/errors.h"
#include "core/rng.h"

namespace sy {

Batcher::Batcher(const std::vector<int32_t>& stream, int64_t batch, int64_t seq, bool masked_lm,
                 int64_t vocab, double mask_prob, uint64_t seed)
    : stream_(stream), masked_lm_(masked_lm), vocab_(vocab), mask_prob_(mask_prob), seed_(seed) {
  if (static_cast<int64_t>(stream.size()) < seq + 2)
    throw Error(ExitCode::bad_input,
                fmt::format("data: a stream of {} tokens is too short for train.seq_len {}; "
                            "use more data or a shorter sequence",
                            stream.size(), seq));
  b_.batch = batch;
  b_.seq = seq;
  b_.ids.resize(static_cast<size_t>(batch * seq));
  b_.targets.resize(static_cast<size_t>(batch * seq));
}

int64_t Batcher::windows() const {
  return (static_cast<int64_t>(stream_.size()) - 1) / b_.seq;
}

void Batcher::fill_row(int64_t row, int64_t start, uint64_t mask_key) {
  const int64_t T = b_.seq;
  int32_t* ids = b_.ids.data() + row * T;
  int32_t* tg = b_.targets.data() + row * T;
  for (int64_t t = 0; t < T; ++t) {
    ids[t] = stream_[start + t];
    tg[t] = stream_[start + t + 1];
  }
  if (masked_lm_) {
    for (int64_t t = 0; t < T; ++t) tg[t] = ids[t];
    mask_tokens(ids, tg, T, vocab_, mask_prob_, seed_, mask_key);
  }
}

const Batch& Batcher::train_batch(int64_t step) {
  const RngStream rng{seed_, mix64(hash64("data.train.offsets"), static_cast<uint64_t>(step))};
  const uint64_t span = stream_.size() - static_cast<size_t>(b_.seq) - 1;
  for (int64_t r = 0; r < b_.batch; ++r)
    fill_row(r, static_cast<int64_t>(rng.below(r, span + 1)),
             mix64(static_cast<uint64_t>(step), static_cast<uint64_t>(r)));
  return b_;
}

const Batch& Batcher::eval_batch(int64_t i) {
  const int64_t n = windows();
  for (int64_t r = 0; r < b_.batch; ++r) {
    const int64_t w = (i * b_.batch + r) % n;
    fill_row(r, w * b_.seq, mix64(~0ull, static_cast<uint64_t>(w)));
  }
  return b_;
}

void mask_tokens(int32_t* ids, int32_t* targets, int64_t n, int64_t vocab, double mask_prob,
                 uint64_t seed, uint64_t key) {
  const RngStream rng{seed, mix64(hash64("data.mlm"), key)};
  const int32_t mask_id = static_cast<int32_t>(vocab - 1);
  for (int64_t t = 0; t < n; ++t) {
    const Philox4 r = rng.block(static_cast<uint64_t>(t));
    const double u_choose = r[0] * (1.0 / 4294967296.0);
    if (u_choose >= mask_prob) {
      targets[t] = -1;
      continue;
    }
    const double u_kind = r[1] * (1.0 / 4294967296.0);
    if (u_kind < 0.8) ids[t] = mask_id;
    else if (u_kind < 0.9) ids[t] = static_cast<int32_t>((static_cast<uint64_t>(r[2]) * vocab) >> 32);
  }
}

}  // namespace sy
