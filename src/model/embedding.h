#pragma once
// Token embedding plus absolute positions (learned, or fixed sinusoids).
#include "model/layer.h"
#include "model/model_config.h"

namespace sy {

class Embedding {
 public:
  Embedding(LayerEnv env, const ModelConfig& cfg);
  void allocate(Arena& arena, int64_t batch, int64_t seq);
  // ids: i32 [B, T] → out, at positions first_position .. first_position + T − 1
  // (decoding continues a sequence one position at a time).
  void forward(const Tensor& ids, int64_t first_position = 0);
  void backward(const Tensor& dout);  // dout [B, T, C]
  ParamId token_table() const { return wte_; }

  Tensor out;  // [B, T, C]

 private:
  LayerEnv env_;
  ModelConfig cfg_;
  ParamId wte_;        // [V, C]
  ParamId wpe_ = -1;   // [max_seq, C] when positions are learned
  Tensor sinusoids_;   // [max_seq, C] when they are fixed
  Tensor ids_;         // the ids of the last forward (a view, not a copy)
};

}  // namespace sy
