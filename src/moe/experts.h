#pragma once
// The experts of one MoE layer: E independent FFNs (GLU with the model's activation,
// like the dense FFN they replace, or the plain two-layer GELU FFN of the EC paper)
// over a packed buffer whose rows are laid out expert
// after expert (RoutePlan::expert_begin). The fast path runs one GEMM per expert on
// its slice of the packed buffer, or, when every expert has the same number of
// rows (expert choice, and any fixed capacity that fills), one strided-batched GEMM
// per weight over all of them: the experts' weights lie at a fixed stride in the
// parameter buffer. forward_reference() is the plain per-expert loop kept beside
// it (gather the expert's tokens, run its FFN, scatter back), which tests hold the
// packed paths to.
#include <string>
#include <vector>

#include "model/layer.h"
#include "moe/moe_config.h"

namespace sy {

class Experts {
 public:
  // Experts first .. first+count-1 of the layer (all of them, or this rank's share
  // under expert parallelism); parameters are named by global expert index.
  // `act`: the GLU's activation (expert_kind glu); ffn experts use GELU.
  Experts(LayerEnv env, const std::string& prefix, int64_t first, int64_t count, int64_t d_model,
          int64_t d_ff, ExpertKind kind, Activation act, double init_std, double out_std);
  void allocate(Arena& arena, int64_t max_slots);
  // xin [slots, D] → yout [slots, D]; xin must stay alive until backward.
  void forward(const Tensor& xin, const std::vector<int64_t>& expert_begin, Tensor yout);
  // dy [slots, D] → dxin [slots, D] (written); weight gradients accumulate.
  void backward(const Tensor& dy, Tensor dxin);
  // Reference: y[t] for token rows x (host loops over experts, dense ops per expert).
  void forward_reference(const Tensor& x, const std::vector<int32_t>& slot_token,
                         const std::vector<int64_t>& expert_begin, Tensor yout);
  // Weight elements one expert multiplies a token by (for FLOP accounting).
  int64_t params_per_expert() const;

 private:
  struct Ids {
    ParamId w_in, w_gate = -1, w_out;
  };
  Tensor rows(const Tensor& t, int64_t begin, int64_t n, int64_t width) const;
  // Rows per expert when every expert has the same (> 0) and their weights lie at
  // one stride (weight_stride_ > 0); else 0.
  int64_t uniform_rows(const std::vector<int64_t>& expert_begin) const;
  // From expert 0's weight `id` to the last expert's, flat, in values or gradients.
  Tensor batch_span(const Tensor& flat, ParamId id, int64_t numel) const;
  void forward_batched(const Tensor& xin, int64_t n, Tensor yout);
  void backward_batched(const Tensor& dy, int64_t n, Tensor dxin);
  void expert_forward(int64_t e, const Tensor& x, Tensor a, Tensor hid, Tensor y);
  LayerEnv env_;
  int64_t E_, D_, H_;
  Activation act_;  // of the GLU; ffn experts: gelu
  ExpertKind kind_;
  std::vector<Ids> ids_;
  // Elements from one expert's weights to the next's: 0 until first asked, -1 when
  // the layout has no single stride.
  mutable int64_t weight_stride_ = 0;
  Tensor xin_;
  Tensor a_;    // [max_slots, 2H] (glu: [a | g]) or [max_slots, H] (ffn)
  Tensor hid_;  // [max_slots, H]
  Tensor dhid_, da_;
  std::vector<int64_t> begin_;
};

}  // namespace sy
