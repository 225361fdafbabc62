// Every backward op of the CPU backend against central finite differences of its
// own forward, in double precision. L = Σ dout ⊙ forward(inputs) for a random dout.
// Also checks the accumulate-vs-write contract of backend/ops.h.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/attention_cache.h"
#include "test_util.h"

namespace sy {
namespace {

using test::as_tensor;
using test::numeric_grad;
using test::random_vec;

constexpr double kRtol = 1e-6, kAtol = 1e-8;

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

class OpsBackward : public ::testing::Test {
 protected:
  std::unique_ptr<Ops> ops = make_cpu_ops();
};

TEST_F(OpsBackward, Embedding) {
  const int64_t B = 2, T = 3, C = 5, V = 4;
  auto wte = random_vec(V * C, 1), wpe = random_vec(T * C, 2), dout = random_vec(B * T * C, 3);
  std::vector<int32_t> ids = {0, 2, 2, 3, 0, 0};  // repeated ids must accumulate
  auto f = [&] {
    std::vector<double> out(static_cast<size_t>(B * T * C));
    ops->embedding_forward(as_tensor(out, {B, T, C}), as_tensor(ids, {B, T}),
                           as_tensor(wte, {V, C}), as_tensor(wpe, {T, C}));
    return dot(out, dout);
  };
  auto dwte = random_vec(V * C, 4), dwpe = random_vec(T * C, 5);  // accumulate onto these
  const auto dwte0 = dwte, dwpe0 = dwpe;
  ops->embedding_backward(as_tensor(dwte, {V, C}), as_tensor(dwpe, {T, C}),
                          as_tensor(dout, {B, T, C}), as_tensor(ids, {B, T}));
  for (size_t i = 0; i < dwte.size(); ++i) dwte[i] -= dwte0[i];
  for (size_t i = 0; i < dwpe.size(); ++i) dwpe[i] -= dwpe0[i];
  EXPECT_CLOSE(dwte, numeric_grad(wte, f), kRtol, kAtol);
  EXPECT_CLOSE(dwpe, numeric_grad(wpe, f), kRtol, kAtol);
}

TEST_F(OpsBackward, Norms) {
  for (NormKind kind : {NormKind::layernorm, NormKind::rmsnorm})
    for (auto [N, C] : {std::array<int64_t, 2>{1, 3}, {4, 7}}) {
      auto x = random_vec(N * C, 6, 2.0), w = random_vec(C, 7), b = random_vec(C, 8),
           dout = random_vec(N * C, 9);
      std::vector<double> out(x.size()), mean(N), rstd(N);
      auto f = [&] {
        ops->norm_forward(kind, as_tensor(out, {N, C}), as_tensor(mean, {N}), as_tensor(rstd, {N}),
                          as_tensor(x, {N, C}), as_tensor(w, {C}), as_tensor(b, {C}), 1e-5);
        return dot(out, dout);
      };
      f();
      auto dx = random_vec(N * C, 10), dw = random_vec(C, 11), db = random_vec(C, 12);
      const auto dx0 = dx, dw0 = dw, db0 = db;
      ops->norm_backward(kind, as_tensor(dx, {N, C}), as_tensor(dw, {C}), as_tensor(db, {C}),
                         as_tensor(dout, {N, C}), as_tensor(x, {N, C}), as_tensor(w, {C}),
                         as_tensor(mean, {N}), as_tensor(rstd, {N}));
      for (size_t i = 0; i < dx.size(); ++i) dx[i] -= dx0[i];  // dx accumulates
      for (size_t i = 0; i < dw.size(); ++i) dw[i] -= dw0[i], db[i] -= db0[i];
      EXPECT_CLOSE(dx, numeric_grad(x, f), kRtol, kAtol) << norm_name(kind);
      EXPECT_CLOSE(dw, numeric_grad(w, f), kRtol, kAtol) << norm_name(kind);
      if (kind == NormKind::layernorm) {
        EXPECT_CLOSE(db, numeric_grad(b, f), kRtol, kAtol);
      }
    }
}

TEST_F(OpsBackward, ActivationsAndGlu) {
  for (Activation act : {Activation::gelu, Activation::silu, Activation::relu}) {
    const int64_t N = 3, H = 5;
    auto ag = random_vec(N * 2 * H, 13, 2.0), dh = random_vec(N * H, 14);
    for (auto& v : ag)
      if (std::abs(v) < 1e-3) v = 0.5;  // keep relu's kink away from the finite difference
    auto f = [&] {
      std::vector<double> h(static_cast<size_t>(N * H));
      ops->glu_forward(act, as_tensor(h, {N, H}), as_tensor(ag, {N, 2 * H}));
      return dot(h, dh);
    };
    std::vector<double> dag(ag.size(), 123.0);  // written, not accumulated
    ops->glu_backward(act, as_tensor(dag, {N, 2 * H}), as_tensor(dh, {N, H}),
                      as_tensor(ag, {N, 2 * H}));
    EXPECT_CLOSE(dag, numeric_grad(ag, f), kRtol, kAtol) << activation_name(act);

    auto x = random_vec(N * H, 15, 2.0);
    for (auto& v : x)
      if (std::abs(v) < 1e-3) v = 0.5;
    auto g = [&] {
      std::vector<double> y(x.size());
      ops->activation_forward(act, as_tensor(y, {N * H}), as_tensor(x, {N * H}));
      return dot(y, dh);
    };
    std::vector<double> dx(x.size());
    ops->activation_backward(act, as_tensor(dx, {N * H}), as_tensor(dh, {N * H}),
                             as_tensor(x, {N * H}));
    EXPECT_CLOSE(dx, numeric_grad(x, g), kRtol, kAtol) << activation_name(act);
  }
}

TEST_F(OpsBackward, Softmax) {
  const int64_t R = 3, C = 6;
  auto x = random_vec(R * C, 16), dout = random_vec(R * C, 17);
  std::vector<double> out(x.size());
  auto f = [&] {
    ops->softmax_forward(as_tensor(out, {R, C}), as_tensor(x, {R, C}));
    return dot(out, dout);
  };
  f();
  std::vector<double> dx(x.size());
  ops->softmax_backward(as_tensor(dx, {R, C}), as_tensor(dout, {R, C}), as_tensor(out, {R, C}));
  EXPECT_CLOSE(dx, numeric_grad(x, f), kRtol, kAtol);
}

TEST_F(OpsBackward, Attention) {
  for (bool causal : {true, false})
    for (auto [B, T, C, NH] : {std::array<int64_t, 4>{1, 1, 2, 1}, {2, 4, 6, 3}, {1, 7, 4, 2}}) {
      std::vector<std::vector<double>> store;
      AttentionCache c = test::make_attention_cache(store, B, NH, T, C / NH);
      auto qkv = random_vec(B * T * 3 * C, 18), dout = random_vec(B * T * C, 19);
      auto f = [&] {
        std::vector<double> out(static_cast<size_t>(B * T * C));
        ops->attention_forward(as_tensor(out, {B, T, C}), c, as_tensor(qkv, {B, T, 3 * C}), NH,
                               causal);
        return dot(out, dout);
      };
      f();
      std::vector<double> dqkv(qkv.size());
      ops->attention_backward(as_tensor(dqkv, {B, T, 3 * C}), c, as_tensor(dout, {B, T, C}), NH,
                              causal);
      EXPECT_CLOSE(dqkv, numeric_grad(qkv, f), kRtol, kAtol) << "causal " << causal << " T " << T;
    }
}

TEST_F(OpsBackward, CrossEntropy) {
  for (double eps : {0.0, 0.2}) {
    const int64_t N = 4, V = 6;
    auto z = random_vec(N * V, 20, 2.0);
    std::vector<int32_t> y = {1, -1, 5, 0};
    std::vector<double> loss(N), nll(N), lse(N);
    auto f = [&] {
      ops->cross_entropy_forward(as_tensor(loss, {N}), as_tensor(nll, {N}), as_tensor(lse, {N}),
                                 as_tensor(z, {N, V}), as_tensor(y, {N}), eps);
      double s = 0;
      for (double l : loss) s += l;
      return 0.7 * s;
    };
    f();
    std::vector<double> dz(z.size());
    ops->cross_entropy_backward(as_tensor(dz, {N, V}), as_tensor(z, {N, V}), as_tensor(lse, {N}),
                                as_tensor(y, {N}), eps, 0.7);
    EXPECT_CLOSE(dz, numeric_grad(z, f), kRtol, kAtol) << "eps " << eps;
    for (int64_t v = 0; v < V; ++v) EXPECT_EQ(dz[1 * V + v], 0.0) << "ignored row has gradient";
  }
}

}  // namespace
}  // namespace sy
