#pragma once
// `switchyard generate` and `switchyard fill-mask`: a finished run's model (or one of
// its checkpoints) used, not trained. Both return the process exit code and throw
// Error(bad_input) (exit 2) naming what is wrong with the input.
#include <cstdint>
#include <string>
#include <vector>

#include "data/text_codec.h"
#include "infer/generator.h"

namespace sy {

struct GenerateOptions {
  std::string run;         // the run directory (config.yaml, final weights)
  std::string checkpoint;  // a checkpoint directory instead of the final weights
  std::vector<std::string> prompts;  // --prompt, or the lines of --prompt-file
  SamplingOptions sampling;
  bool json = false;       // one JSON object per prompt, with each token's experts
  std::vector<std::string> overrides;
};
int run_generate(const GenerateOptions& o);

struct FillMaskOptions {
  std::string run, checkpoint;
  std::string text;  // with one or more "<mask>"
  int64_t top = 5;
  bool json = false;
  std::vector<std::string> overrides;
};
int run_fill_mask(const FillMaskOptions& o);

// A prompt's ids; throws Error(bad_input) for an empty prompt or one of which no
// character is in the vocabulary (`n` numbers it in the message).
std::vector<int32_t> encode_prompt(const TextCodec& codec, const std::string& text, size_t n);

// Prompts from a file, one per line (a trailing newline ends the last); an empty
// line is refused, naming the file and line.
std::vector<std::string> read_prompt_file(const std::string& path);

}  // namespace sy
