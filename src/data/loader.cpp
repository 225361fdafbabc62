#include "data/loader.h"

#include <algorithm>

#include "core/errors.h"
#include "core/rng.h"

namespace sy {

void MemoryTokens::read(int64_t start, int64_t n, int32_t* out) const {
  std::copy(tokens_.begin() + start, tokens_.begin() + start + n, out);
}

Loader::Loader(const TokenSource& tokens, const LoaderOptions& o, const std::string& what)
    : tokens_(tokens), o_(o), windows_(tokens.size() > 0 ? (tokens.size() - 1) / o.seq : 0) {
  SY_CHECK(o.rank >= 0 && o.rank < o.world && o.accum >= 1, "rank {} of {}, accum {}", o.rank,
           o.world, o.accum);
  if (windows_ < 1)
    throw Error(ExitCode::bad_input,
                fmt::format("{} holds {} tokens, fewer than one window of train.seq_len + 1 = {}; "
                            "use more data or a shorter sequence",
                            what, tokens.size(), o.seq + 1));
  if (o.masked_lm && (o.mask_id < 0 || o.mask_id >= o.vocab))
    throw Error(ExitCode::bad_input, what + " has no <mask> token in its vocabulary, which the "
                                            "encoder's masked-LM objective needs");
  b_.batch = o.batch;
  b_.seq = o.seq;
  b_.ids.resize(static_cast<size_t>(o.batch * o.seq));
  b_.targets.resize(b_.ids.size());
  b_.windows.resize(static_cast<size_t>(o.batch));
  window_.resize(static_cast<size_t>(o.seq + 1));
}

const std::vector<int64_t>& Loader::order_of(int64_t epoch) {
  if (epoch == order_epoch_) return order_;
  order_.resize(static_cast<size_t>(windows_));
  for (int64_t i = 0; i < windows_; ++i) order_[i] = i;
  const RngStream rng{o_.seed, mix64(hash64("loader.epoch"), static_cast<uint64_t>(epoch))};
  for (int64_t i = windows_ - 1; i > 0; --i)
    std::swap(order_[i], order_[rng.below(static_cast<uint64_t>(i), static_cast<uint64_t>(i + 1))]);
  order_epoch_ = epoch;
  return order_;
}

void Loader::fill_row(int64_t row, int64_t window, uint64_t mask_key) {
  const int64_t T = o_.seq;
  int32_t* ids = b_.ids.data() + row * T;
  int32_t* tg = b_.targets.data() + row * T;
  b_.windows[row] = window;
  if (window < 0) {
    std::fill(ids, ids + T, 0);
    std::fill(tg, tg + T, -1);
    return;
  }
  tokens_.read(window * T, T + 1, window_.data());
  std::copy(window_.begin(), window_.begin() + T, ids);
  if (o_.masked_lm) {
    std::copy(window_.begin(), window_.begin() + T, tg);
    mask_tokens(ids, tg, T, o_.vocab, o_.mask_id, o_.mask_prob, o_.seed, mask_key);
  } else {
    std::copy(window_.begin() + 1, window_.end(), tg);
  }
}

const Batch& Loader::next() {
  if (batches_per_epoch() < 1)
    throw Error(ExitCode::bad_input,
                fmt::format("training data has {} windows, fewer than one global batch of {} "
                            "(train.batch_size × ranks × train.grad_accum); use more data or a "
                            "smaller batch",
                            windows_, global_batch()));
  const int64_t epoch = state_.consumed / batches_per_epoch();
  const int64_t j = state_.consumed % batches_per_epoch();
  const std::vector<int64_t>& order = order_of(epoch);
  const int64_t slice = state_.micro * o_.world + o_.rank;
  b_.first_row = slice * o_.batch;
  for (int64_t r = 0; r < o_.batch; ++r) {
    const int64_t w = order[j * global_batch() + slice * o_.batch + r];
    fill_row(r, w, mix64(static_cast<uint64_t>(epoch), static_cast<uint64_t>(w)));
  }
  if (++state_.micro == o_.accum) {
    state_.micro = 0;
    ++state_.consumed;
  }
  return b_;
}

const Batch& Loader::eval_batch(int64_t i) {
  for (int64_t r = 0; r < o_.batch; ++r) {
    const int64_t w = i * eval_batch_rows() + o_.rank * o_.batch + r;
    fill_row(r, w < windows_ ? w : -1, mix64(~0ull, static_cast<uint64_t>(w)));
  }
  return b_;
}

void mask_tokens(int32_t* ids, int32_t* targets, int64_t n, int64_t vocab, int32_t mask_id,
                 double mask_prob, uint64_t seed, uint64_t key) {
  const RngStream rng{seed, mix64(hash64("data.mlm"), key)};
  for (int64_t t = 0; t < n; ++t) {
    const Philox4 r = rng.block(static_cast<uint64_t>(t));
    if (r[0] * (1.0 / 4294967296.0) >= mask_prob) {
      targets[t] = -1;
      continue;
    }
    const double u_kind = r[1] * (1.0 / 4294967296.0);
    if (u_kind < 0.8) ids[t] = mask_id;
    else if (u_kind < 0.9) ids[t] = static_cast<int32_t>((static_cast<uint64_t>(r[2]) * vocab) >> 32);
  }
}

}  // namespace sy
