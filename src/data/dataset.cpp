#include "data/dataset.h"

#include "core/errors.h"
#include "data/prepared.h"
#include "data/token_stream.h"

namespace sy {

Dataset open_dataset(const DataConfig& d, int64_t vocab, uint64_t seed,
                     const std::string& eval_split) {
  Dataset ds;
  ds.eval_split = eval_split;
  if (d.source == DataSource::prepared) {
    const Manifest m = Manifest::load(d.path);
    if (m.vocab_size != vocab)
      throw Error(ExitCode::bad_input,
                  fmt::format("data.path '{}' was prepared with a {}-piece tokenizer, but "
                              "model.vocab_size is {}; set model.vocab_size: {} or re-run prepare",
                              d.path, m.vocab_size, vocab, m.vocab_size));
    ds.name = d.path;
    ds.train = std::make_unique<ShardTokens>(d.path, m, "train", d.verify_checksums);
    ds.eval = std::make_unique<ShardTokens>(d.path, m, eval_split, d.verify_checksums);
    ds.mask_id = m.mask_id;
    const SplitInfo& e = m.splits.at(eval_split);
    ds.eval_words_per_token = e.tokens > 0 ? static_cast<double>(e.words) / e.tokens : 0;
    ds.eval_tags.of_token = load_split_tags(d.path, m, eval_split, d.verify_checksums);
    if (!ds.eval_tags.of_token.empty()) ds.eval_tags.names = m.tag_names;
    return ds;
  }
  if (eval_split != "val")
    throw Error(ExitCode::bad_input, "only prepared data (data.source: prepared) has a '" +
                                         eval_split + "' split");
  TokenStreams s = load_streams(d, vocab, seed);
  ds.name = d.source == DataSource::synthetic ? "synthetic data" : d.path;
  ds.train = std::make_unique<MemoryTokens>(std::move(s.train));
  ds.eval = std::make_unique<MemoryTokens>(std::move(s.eval));
  ds.mask_id = static_cast<int32_t>(vocab - 1);  // synthetic / bytes: the last id is the mask
  ds.entropy_bits = s.entropy_bits;
  return ds;
}

}  // namespace sy
