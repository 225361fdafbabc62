#include "model/glu_ffn.h"

namespace sy {

GluFfn::GluFfn(LayerEnv env, const std::string& prefix, int64_t d_model, int64_t d_ff,
               Activation act, double init_std, double out_std)
    : env_(env), C_(d_model), H_(d_ff), act_(act) {
  w_in_ = env.params.add(prefix + ".w_in", {H_, C_}, Init::normal, init_std);
  w_gate_ = env.params.add(prefix + ".w_gate", {H_, C_}, Init::normal, init_std);
  w_out_ = env.params.add(prefix + ".w_out", {C_, H_}, Init::normal, out_std);
}

void GluFfn::allocate(Arena& arena, int64_t n_tokens) {
  ag_ = arena.make(env_.dtype, {n_tokens, 2 * H_});
  hid_ = arena.make(env_.dtype, {n_tokens, H_});
}

void GluFfn::forward(const Tensor& x, Tensor out) {
  x_ = x;
  const int64_t N = x.numel() / C_;
  Ops& ops = env_.ops;
  ops.gemm(false, true, N, 2 * H_, C_, 1.0, x, env_.params.value_span(w_in_, w_gate_, {2 * H_, C_}),
           0.0, ag_);
  ops.glu_forward(act_, hid_, ag_);
  ops.gemm(false, true, N, C_, H_, 1.0, hid_, env_.params.value(w_out_), 1.0, out);
}

void GluFfn::backward(const Tensor& dout, Tensor dx, BackwardScratch& s) {
  const int64_t N = x_.numel() / C_;
  Ops& ops = env_.ops;
  ParamStore& P = env_.params;
  Tensor dhid = s.dhid.view({N, H_});
  Tensor dag = s.dag.view({N, 2 * H_});
  ops.gemm(true, false, C_, H_, N, 1.0, dout, hid_, 1.0, P.grad(w_out_));
  ops.gemm(false, false, N, H_, C_, 1.0, dout, P.value(w_out_), 0.0, dhid);
  ops.glu_backward(act_, dag, dhid, ag_);
  ops.gemm(true, false, 2 * H_, C_, N, 1.0, dag, x_, 1.0, P.grad_span(w_in_, w_gate_, {2 * H_, C_}));
  ops.gemm(false, false, N, C_, 2 * H_, 1.0, dag, P.value_span(w_in_, w_gate_, {2 * H_, C_}), 0.0,
           dx);
}

}  // namespace sy
