// Each layer alone against central finite differences in double precision:
// L = Σ dout ⊙ out(x), checking ∂L/∂x and every parameter the layer registered.
#include <gtest/gtest.h>

#include <functional>

#include "model/attention.h"
#include "model/block.h"
#include "model/glu_ffn.h"
#include "model/model_fixture.h"
#include "model/norm.h"
#include "test_util.h"

namespace sy {
namespace {

struct Harness {
  std::unique_ptr<Ops> ops = make_ops(Device::cpu);
  ParamStore params{*ops, DType::f64};
  LayerEnv env{*ops, params, DType::f64};
  Arena arena{*ops};
  BackwardScratch scratch;
  int64_t B = 2, T = 4, C = 6, H = 10, NH = 2;

  void make_scratch() {
    const int64_t N = B * T;
    scratch.dln = arena.make(DType::f64, {N, C});
    scratch.datt = arena.make(DType::f64, {N, C});
    scratch.dqkv = arena.make(DType::f64, {N, 3 * C});
    scratch.dhid = arena.make(DType::f64, {N, H});
    scratch.dag = arena.make(DType::f64, {N, 2 * H});
    for (Tensor* t : {&scratch.dq, &scratch.dk, &scratch.dv})
      *t = arena.make(DType::f64, {B, NH, T, C / NH});
    scratch.dprobs = arena.make(DType::f64, {B, NH, T, T});
  }

  // forward(x) writes the layer's output into `out`; backward(dout, dx) fills dx.
  void check(const std::function<void(const Tensor&, Tensor)>& forward,
             const std::function<void(const Tensor&, Tensor)>& backward) {
    const int64_t N = B * T;
    Tensor x = arena.make(DType::f64, {B, T, C}), out = arena.make(DType::f64, {B, T, C}),
           dx = arena.make(DType::f64, {B, T, C}), dout = arena.make(DType::f64, {B, T, C});
    auto xs = test::random_vec(N * C, 3), ds = test::random_vec(N * C, 4);
    ops->from_host(x, xs.data());
    ops->from_host(dout, ds.data());
    auto loss = [&] {
      ops->fill(out, 0.0);
      forward(x.view({N, C}), out.view({N, C}));
      double s = 0;
      for (int64_t i = 0; i < N * C; ++i) s += out.data<double>()[i] * ds[i];
      return s;
    };
    loss();
    params.zero_grads();
    ops->fill(dx, 0.0);
    backward(dout.view({N, C}), dx.view({N, C}));
    std::vector<double> analytic_dx(dx.data<double>(), dx.data<double>() + N * C);
    std::vector<double> xv(x.data<double>(), x.data<double>() + N * C);
    auto numeric_dx = test::numeric_grad(xv, [&] {
      ops->from_host(x, xv.data());
      return loss();
    });
    ops->from_host(x, xs.data());
    EXPECT_CLOSE(analytic_dx, numeric_dx, 1e-6, 1e-8) << "input gradient";
    std::vector<double> w(params.values().data<double>(), params.values().data<double>() + params.numel());
    std::vector<double> g(params.grads().data<double>(), params.grads().data<double>() + params.numel());
    auto numeric = test::numeric_grad(w, [&] {
      ops->from_host(params.values(), w.data());
      return loss();
    });
    EXPECT_CLOSE(g, numeric, 1e-6, 1e-8) << "parameter gradients";
  }
};

TEST(LayerGradCheck, Norm) {
  for (NormKind kind : {NormKind::layernorm, NormKind::rmsnorm}) {
    Harness h;
    Norm norm(h.env, "n", kind, h.C, 1e-5);
    h.params.allocate();
    h.params.initialize(1);
    // Perturb the unit weights so the check is not at a special point.
    auto w = test::random_vec(h.params.numel(), 9, 0.5);
    for (auto& v : w) v += 1.0;
    h.params.ops().from_host(h.params.values(), w.data());
    norm.allocate(h.arena, h.B * h.T);
    h.check([&](const Tensor& x, Tensor out) { norm.forward(x); h.ops->copy(out, norm.out); },
            [&](const Tensor& d, Tensor dx) { norm.backward(d, dx); });
  }
}

TEST(LayerGradCheck, AttentionCausalAndBidirectional) {
  for (Arch arch : {Arch::decoder, Arch::encoder}) {
    Harness h;
    ModelConfig cfg = test::tiny_model(arch);
    cfg.d_model = h.C;
    cfg.n_heads = h.NH;
    Attention attn(h.env, "a", cfg);
    h.params.allocate();
    h.params.initialize(2);
    h.make_scratch();
    attn.allocate(h.arena, h.B, h.T, h.scratch);
    h.check([&](const Tensor& x, Tensor out) { attn.forward(x, out); },
            [&](const Tensor& d, Tensor dx) { attn.backward(d, dx, h.scratch); });
  }
}

TEST(LayerGradCheck, GluFfnEveryActivation) {
  for (Activation act : {Activation::gelu, Activation::silu, Activation::relu}) {
    Harness h;
    GluFfn ffn(h.env, "f", h.C, h.H, act, 0.5, 0.5);
    h.params.allocate();
    h.params.initialize(3);
    h.make_scratch();
    ffn.allocate(h.arena, h.B * h.T);
    h.check([&](const Tensor& x, Tensor out) { ffn.forward(x, out); },
            [&](const Tensor& d, Tensor dx) { ffn.backward(d, dx, h.scratch); });
  }
}

TEST(LayerGradCheck, PreNormBlock) {
  Harness h;
  ModelConfig cfg = test::tiny_model(Arch::decoder);
  cfg.d_model = h.C;
  cfg.n_heads = h.NH;
  cfg.d_ff = h.H;
  Block block(h.env, "b", cfg,
              std::make_unique<GluFfn>(h.env, "b.ffn", h.C, h.H, Activation::silu, 0.4, 0.4));
  h.params.allocate();
  h.params.initialize(4);
  h.make_scratch();
  block.allocate(h.arena, h.B, h.T, h.scratch);
  h.check([&](const Tensor& x, Tensor out) { block.forward(x.view({h.B, h.T, h.C})); h.ops->copy(out, block.out); },
          [&](const Tensor& d, Tensor dx) {
            h.ops->copy(dx, d);  // the block updates the residual gradient in place
            block.backward(dx.view({h.B, h.T, h.C}), h.scratch);
          });
}

}  // namespace
}  // namespace sy
