#pragma once
// `switchyard verify DIR`: everything a resume checks, without training. The
// checkpoint's own config (from its state.json) builds the model it was saved from,
// and its tensors and Adam moments are loaded into it through the same code a
// resume runs, so that verify refuses exactly what a resume would.
#include <string>

namespace sy {

// Throws Error(checkpoint) naming the file and what is wrong.
void verify_checkpoint(const std::string& dir);

}  // namespace sy
