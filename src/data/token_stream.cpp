#include "data/token_stream.h"

#include <cmath>
#include <fstream>
#include <iterator>

#include "core/errors.h"
#include "core/rng.h"

namespace sy {
namespace {

TokenStreams split(std::vector<int32_t> all, double eval_fraction) {
  TokenStreams s;
  const size_t n_eval = static_cast<size_t>(static_cast<double>(all.size()) * eval_fraction);
  s.eval.assign(all.end() - static_cast<std::ptrdiff_t>(n_eval), all.end());
  all.resize(all.size() - n_eval);
  s.train = std::move(all);
  return s;
}

}  // namespace

TokenStreams make_synthetic_streams(const DataConfig& d, int64_t vocab, uint64_t seed) {
  const int64_t k = std::min<int64_t>(d.synthetic_branching, vocab);
  const RngStream table_rng{seed, hash64("data.synthetic.table")};
  const RngStream walk_rng{seed, hash64("data.synthetic.walk")};
  // successors[v*k + j] with cumulative probabilities cum[v*k + j]
  std::vector<int32_t> successors(static_cast<size_t>(vocab * k));
  std::vector<double> cum(static_cast<size_t>(vocab * k));
  double entropy = 0;
  for (int64_t v = 0; v < vocab; ++v) {
    double total = 0;
    for (int64_t j = 0; j < k; ++j) {
      successors[v * k + j] = static_cast<int32_t>(table_rng.below(v * k + j, vocab));
      total += cum[v * k + j] = 0.1 + table_rng.uniform_double((v * k + j) ^ (1ull << 40));
    }
    double acc = 0;
    for (int64_t j = 0; j < k; ++j) {
      const double p = cum[v * k + j] / total;
      entropy -= p * std::log2(p) / static_cast<double>(vocab);  // uniform-weighted estimate
      cum[v * k + j] = (acc += p);
    }
  }
  std::vector<int32_t> all(static_cast<size_t>(d.synthetic_tokens));
  int32_t cur = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    all[i] = cur;
    const double u = walk_rng.uniform_double(i);
    int64_t j = 0;
    while (j + 1 < k && u >= cum[cur * k + j]) ++j;
    cur = successors[cur * k + j];
  }
  TokenStreams s = split(std::move(all), d.eval_fraction);
  s.entropy_bits = entropy;
  return s;
}

TokenStreams read_byte_streams(const DataConfig& d) {
  std::ifstream in(d.path, std::ios::binary);
  if (!in)
    throw Error(ExitCode::bad_input, "data.path: cannot read '" + d.path + "' (does it exist?)");
  std::vector<int32_t> all;
  for (auto it = std::istreambuf_iterator<char>(in); it != std::istreambuf_iterator<char>(); ++it)
    all.push_back(static_cast<unsigned char>(*it));
  if (all.size() < 1024)
    throw Error(ExitCode::bad_input, "data.path: '" + d.path + "' holds only " +
                                         std::to_string(all.size()) +
                                         " bytes; need at least 1024 to train and evaluate");
  return split(std::move(all), d.eval_fraction);
}

TokenStreams load_streams(const DataConfig& d, int64_t vocab, uint64_t seed) {
  return d.source == DataSource::synthetic ? make_synthetic_streams(d, vocab, seed)
                                           : read_byte_streams(d);
}

}  // namespace sy
