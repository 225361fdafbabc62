#pragma once
// Samples during training (train.sample_every): rank 0 continues the configured
// prompts greedily with the weights of the moment, prints the text and appends
// one JSON line per prompt to <run>/samples.jsonl:
//   {"steps_done": 200, "prompt": "The jury", "completion": " said ...", "tokens": 32}
// It decodes with its own copy of the model (a KV-cache Generator), so training
// state, buffers and random streams are untouched: a run samples or not, same bits.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/model_io.h"
#include "config/config.h"
#include "data/text_codec.h"
#include "infer/generator.h"

namespace sy {

class TrainingSampler {
 public:
  // Encodes the prompts now, on every rank, so a bad one ends the whole run before
  // it trains (exit 2). Only where `generate_here` holds the decoding model.
  TrainingSampler(const Config& cfg, Ops& ops, bool generate_here);
  // After `steps_done` steps: copies `trained` (same model) and the routers'
  // thresholds, generates, writes. Does nothing where generate_here was false.
  void sample(int64_t steps_done, const ParamStore& trained, const RouterState& router_state);

 private:
  Config cfg_;
  std::unique_ptr<TextCodec> codec_;
  std::vector<std::string> prompts_;
  std::vector<std::vector<int32_t>> ids_;
  std::unique_ptr<Generator> gen_;
};

}  // namespace sy
