// Every forward op of the CPU backend against the naive double reference, on
// random and awkward shapes (size 1, non-multiples of 8), in f32 and f64, with a
// tolerance per op and dtype.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_ops.h"
#include "backend/reference.h"
#include "backend/attention_cache.h"
#include "test_util.h"

namespace sy {
namespace {

using test::as_tensor;
using test::random_vec;
using test::to_float;

struct Tol {
  double rtol, atol;
};
// Per-op tolerances: f64 must agree to rounding; f32 to its precision for the
// reduction length involved.
constexpr Tol kF64{1e-10, 1e-12};
constexpr Tol kF32Gemm{2e-4, 2e-5}, kF32Elem{2e-5, 2e-6}, kF32Norm{1e-4, 1e-5},
    kF32Attn{2e-4, 2e-5}, kF32Loss{2e-5, 2e-5};

class OpsForward : public ::testing::Test {
 protected:
  std::unique_ptr<Ops> ops = make_cpu_ops();
};

struct GemmCase {
  bool ta, tb;
  int64_t M, N, K;
};

TEST_F(OpsForward, GemmAllTransposesAndShapes) {
  const GemmCase cases[] = {{false, false, 1, 1, 1},  {false, true, 7, 13, 5},
                            {true, false, 9, 1, 17},  {true, true, 33, 31, 3},
                            {false, false, 64, 48, 40}, {false, true, 1, 100, 9}};
  uint64_t seed = 1;
  for (const GemmCase& c : cases) {
    auto A = random_vec(c.M * c.K, seed++), B = random_vec(c.K * c.N, seed++),
         C0 = random_vec(c.M * c.N, seed++);
    auto ref = C0;
    ref::gemm(c.ta, c.tb, c.M, c.N, c.K, 0.7, A, B, 0.3, ref);
    auto C = C0;
    ops->gemm(c.ta, c.tb, c.M, c.N, c.K, 0.7, as_tensor(A, {c.M * c.K}), as_tensor(B, {c.K * c.N}),
              0.3, as_tensor(C, {c.M * c.N}));
    EXPECT_CLOSE(C, ref, kF64.rtol, kF64.atol) << c.M << "x" << c.N << "x" << c.K;
    auto Af = to_float(A), Bf = to_float(B), Cf = to_float(C0);
    ops->gemm(c.ta, c.tb, c.M, c.N, c.K, 0.7, as_tensor(Af, {c.M * c.K}),
              as_tensor(Bf, {c.K * c.N}), 0.3, as_tensor(Cf, {c.M * c.N}));
    EXPECT_CLOSE(Cf, ref, kF32Gemm.rtol, kF32Gemm.atol) << c.M << "x" << c.N << "x" << c.K;
  }
}

TEST_F(OpsForward, GemmStridedBatchedMatchesLoopOfGemms) {
  for (int64_t batch : {1, 3, 9}) {
    const int64_t M = 5, N = 7, K = 3, sa = M * K + 2, sb = K * N + 1, sc = M * N + 4;
    auto A = random_vec(batch * sa, 1), B = random_vec(batch * sb, 2), C = random_vec(batch * sc, 3);
    auto ref = C;
    for (int64_t i = 0; i < batch; ++i) {
      ref::Vec a(A.begin() + i * sa, A.begin() + i * sa + M * K);
      ref::Vec b(B.begin() + i * sb, B.begin() + i * sb + K * N);
      ref::Vec c(ref.begin() + i * sc, ref.begin() + i * sc + M * N);
      ref::gemm(true, false, M, N, K, 1.5, a, b, 0.5, c);  // A read as [K,M] transposed
      std::copy(c.begin(), c.end(), ref.begin() + i * sc);
    }
    ops->gemm_strided_batched(true, false, M, N, K, 1.5, as_tensor(A, {batch * sa}), sa,
                              as_tensor(B, {batch * sb}), sb, 0.5, as_tensor(C, {batch * sc}), sc,
                              batch);
    EXPECT_CLOSE(C, ref, kF64.rtol, kF64.atol) << "batch " << batch;
  }
}

// K = 0: C = beta·C, and beta = 0 writes zeros even over NaN (BLAS never reads C
// then), single and batched, f32 and f64.
TEST_F(OpsForward, GemmWithEmptyInnerDimensionScalesC) {
  const int64_t M = 3, N = 5, batch = 2;
  for (double beta : {0.0, 0.5}) {
    std::vector<double> C(batch * M * N, std::nan("")), A(1), B(1);
    for (int64_t i = 0; i < batch * M * N; i += 2) C[i] = static_cast<double>(i);
    std::vector<float> Cf(C.begin(), C.end());
    std::vector<float> Af(1), Bf(1);
    const auto expect = [&](double c) { return beta == 0.0 ? 0.0 : beta * c; };
    std::vector<double> C0 = C;
    ops->gemm(false, true, M, N, 0, 1.0, as_tensor(A, {1}).view({0}),
              as_tensor(B, {1}).view({0}), beta, as_tensor(C, {batch * M * N}).view({M * N}));
    ops->gemm_strided_batched(true, false, M, N, 0, 1.0, as_tensor(Af, {1}).view({0}), 0,
                              as_tensor(Bf, {1}).view({0}), 0, beta,
                              as_tensor(Cf, {batch * M * N}), M * N, batch);
    for (int64_t i = 0; i < batch * M * N; ++i) {
      if (i < M * N) {
        if (beta == 0.0 || !std::isnan(C0[i])) {
          EXPECT_EQ(C[i], expect(C0[i])) << i;
        } else {
          EXPECT_TRUE(std::isnan(C[i])) << i;
        }
      } else {
        EXPECT_TRUE(std::isnan(C[i]) == std::isnan(C0[i]) && (std::isnan(C[i]) || C[i] == C0[i]))
            << "element " << i << " outside the product was written";
      }
      if (beta == 0.0 || !std::isnan(C0[i])) {
        EXPECT_EQ(Cf[i], static_cast<float>(expect(C0[i]))) << i;
      } else {
        EXPECT_TRUE(std::isnan(Cf[i])) << i;
      }
    }
  }
}

TEST_F(OpsForward, EmbeddingAddsTokenAndPosition) {
  for (auto [B, T, C, V] : {std::array<int64_t, 4>{1, 1, 1, 2}, {3, 5, 7, 11}, {2, 9, 16, 4}}) {
    auto wte = random_vec(V * C, 4), wpe = random_vec((T + 2) * C, 5);
    std::vector<int32_t> ids(static_cast<size_t>(B * T));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7 + 3) % V);
    std::vector<double> out(static_cast<size_t>(B * T * C));
    ops->embedding_forward(as_tensor(out, {B, T, C}), as_tensor(ids, {B, T}),
                           as_tensor(wte, {V, C}), as_tensor(wpe, {T + 2, C}));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < C; ++c)
          ASSERT_DOUBLE_EQ(out[(b * T + t) * C + c], wte[ids[b * T + t] * C + c] + wpe[t * C + c]);
  }
}

TEST_F(OpsForward, LayerNormAndRmsNorm) {
  for (bool rms : {false, true})
    for (auto [N, C] : {std::array<int64_t, 2>{1, 1}, {3, 2}, {5, 13}, {17, 64}}) {
      auto x = random_vec(N * C, 6, 3.0), w = random_vec(C, 7), b = random_vec(C, 8);
      for (auto& v : x) v += 2.0;  // a mean far from 0 exercises the centring
      const auto ref = ref::layernorm(x, w, b, N, C, 1e-5, rms);
      std::vector<double> out(x.size()), mean(N), rstd(N);
      const NormKind kind = rms ? NormKind::rmsnorm : NormKind::layernorm;
      ops->norm_forward(kind, as_tensor(out, {N, C}), as_tensor(mean, {N}), as_tensor(rstd, {N}),
                        as_tensor(x, {N, C}), as_tensor(w, {C}), as_tensor(b, {C}), 1e-5);
      EXPECT_CLOSE(out, ref, kF64.rtol, 1e-10) << (rms ? "rms" : "ln") << " " << N << "x" << C;
      auto xf = to_float(x), wf = to_float(w), bf = to_float(b);
      std::vector<float> outf(x.size()), meanf(N), rstdf(N);
      ops->norm_forward(kind, as_tensor(outf, {N, C}), as_tensor(meanf, {N}),
                        as_tensor(rstdf, {N}), as_tensor(xf, {N, C}), as_tensor(wf, {C}),
                        as_tensor(bf, {C}), 1e-5);
      EXPECT_CLOSE(outf, ref, kF32Norm.rtol, kF32Norm.atol);
    }
}

TEST_F(OpsForward, ActivationsAndGlu) {
  const Activation acts[] = {Activation::gelu, Activation::silu, Activation::relu};
  for (int k = 0; k < 3; ++k)
    for (auto [N, H] : {std::array<int64_t, 2>{1, 1}, {4, 3}, {7, 33}}) {
      auto ag = random_vec(N * 2 * H, 9, 2.0);
      std::vector<double> h(static_cast<size_t>(N * H)), ref(h.size());
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < H; ++j)
          ref[i * H + j] = ref::act(k, ag[i * 2 * H + j]) * ag[i * 2 * H + H + j];
      ops->glu_forward(acts[k], as_tensor(h, {N, H}), as_tensor(ag, {N, 2 * H}));
      EXPECT_CLOSE(h, ref, kF64.rtol, kF64.atol) << activation_name(acts[k]);
      auto agf = to_float(ag);
      std::vector<float> hf(h.size());
      ops->glu_forward(acts[k], as_tensor(hf, {N, H}), as_tensor(agf, {N, 2 * H}));
      EXPECT_CLOSE(hf, ref, kF32Elem.rtol, kF32Elem.atol) << activation_name(acts[k]);
      // Plain activation.
      std::vector<double> a(ag.begin(), ag.begin() + N * H), out(a.size()), aref(a.size());
      for (size_t i = 0; i < a.size(); ++i) aref[i] = ref::act(k, a[i]);
      ops->activation_forward(acts[k], as_tensor(out, {N * H}), as_tensor(a, {N * H}));
      EXPECT_CLOSE(out, aref, kF64.rtol, kF64.atol);
    }
}

TEST_F(OpsForward, SoftmaxIsStableForLargeLogits) {
  for (auto [R, C] : {std::array<int64_t, 2>{1, 1}, {3, 5}, {6, 129}}) {
    auto x = random_vec(R * C, 10, 4.0);
    x[0] += 1000.0;  // would overflow without max-subtraction
    const auto ref = ref::softmax(x, R, C);
    std::vector<double> out(x.size());
    ops->softmax_forward(as_tensor(out, {R, C}), as_tensor(x, {R, C}));
    EXPECT_CLOSE(out, ref, kF64.rtol, kF64.atol);
  }
}

TEST_F(OpsForward, AttentionCausalAndBidirectional) {
  for (bool causal : {true, false})
    for (auto [B, T, C, NH] : {std::array<int64_t, 4>{1, 1, 2, 1}, {2, 5, 6, 3}, {3, 17, 16, 4}}) {
      auto qkv = random_vec(B * T * 3 * C, 11);
      const auto ref = ref::attention(qkv, B, T, C, NH, causal);
      std::vector<std::vector<double>> store;
      AttentionCache cache = test::make_attention_cache(store, B, NH, T, C / NH);
      std::vector<double> out(static_cast<size_t>(B * T * C));
      ops->attention_forward(as_tensor(out, {B, T, C}), cache, as_tensor(qkv, {B, T, 3 * C}), NH,
                             causal);
      EXPECT_CLOSE(out, ref, 1e-10, 1e-12) << "causal " << causal << " T " << T;
    }
}

TEST_F(OpsForward, CausalAttentionIgnoresTheFuture) {
  const int64_t B = 1, T = 6, C = 4, NH = 2;
  auto qkv = random_vec(B * T * 3 * C, 12);
  std::vector<std::vector<double>> store;
  AttentionCache cache = test::make_attention_cache(store, B, NH, T, C / NH);
  std::vector<double> out1(static_cast<size_t>(B * T * C)), out2(out1.size());
  ops->attention_forward(as_tensor(out1, {B, T, C}), cache, as_tensor(qkv, {B, T, 3 * C}), NH, true);
  for (int64_t c = 0; c < 3 * C; ++c) qkv[(T - 1) * 3 * C + c] += 5.0;  // change the last token
  ops->attention_forward(as_tensor(out2, {B, T, C}), cache, as_tensor(qkv, {B, T, 3 * C}), NH, true);
  for (int64_t i = 0; i < (T - 1) * C; ++i) EXPECT_EQ(out1[i], out2[i]) << "position " << i / C;
  bool last_changed = false;
  for (int64_t i = (T - 1) * C; i < T * C; ++i) last_changed |= out1[i] != out2[i];
  EXPECT_TRUE(last_changed);
}

TEST_F(OpsForward, CrossEntropyWithSmoothingAndIgnoredRows) {
  for (double eps : {0.0, 0.1, 0.5})
    for (auto [N, V] : {std::array<int64_t, 2>{1, 2}, {4, 7}, {9, 300}}) {
      auto z = random_vec(N * V, 13, 3.0);
      std::vector<int32_t> y(static_cast<size_t>(N));
      for (int64_t i = 0; i < N; ++i) y[i] = static_cast<int32_t>((i * 5 + 1) % V);
      if (N > 1) y[1] = -1;  // a row without a target
      ref::Vec rl, rn;
      ref::cross_entropy(z, y, N, V, eps, rl, rn);
      std::vector<double> loss(N), nll(N), lse(N);
      ops->cross_entropy_forward(as_tensor(loss, {N}), as_tensor(nll, {N}), as_tensor(lse, {N}),
                                 as_tensor(z, {N, V}), as_tensor(y, {N}), eps);
      EXPECT_CLOSE(loss, rl, kF64.rtol, 1e-12);
      EXPECT_CLOSE(nll, rn, kF64.rtol, 1e-12);
      auto zf = to_float(z);
      std::vector<float> lf(N), nf(N), sf(N);
      ops->cross_entropy_forward(as_tensor(lf, {N}), as_tensor(nf, {N}), as_tensor(sf, {N}),
                                 as_tensor(zf, {N, V}), as_tensor(y, {N}), eps);
      EXPECT_CLOSE(lf, rl, kF32Loss.rtol, kF32Loss.atol);
    }
}

TEST_F(OpsForward, ReductionsAreExactAndThreadCountIndependent) {
  auto x = random_vec(100003, 14);
  double ss = 0, s = 0;
  for (double v : x) ss += v * v, s += v;
  EXPECT_NEAR(ops->sum_squares(as_tensor(x, {100003})), ss, 1e-9 * ss);
  EXPECT_NEAR(ops->sum(as_tensor(x, {100003})), s, 1e-9);
  auto xf = to_float(x);
  ops->set_threads(1);
  const double one = ops->sum_squares(as_tensor(xf, {100003}));
  ops->set_threads(2);
  EXPECT_EQ(one, ops->sum_squares(as_tensor(xf, {100003})));
}

TEST_F(OpsForward, GatherCombineAndRowDotsForMoeDispatch) {
  const int64_t N = 5, C = 3, S = 7;
  auto x = random_vec(N * C, 20), y = random_vec(S * C, 21), w = random_vec(S, 22);
  std::vector<int32_t> rows = {4, 0, 0, 2, 4, 1, 4};  // token 3 routed nowhere
  // gather: out[i] = w[i]·x[rows[i]]
  std::vector<double> g(static_cast<size_t>(S * C));
  ops->gather_rows(as_tensor(g, {S, C}), as_tensor(x, {N, C}), as_tensor(rows, {S}), as_tensor(w, {S}));
  for (int64_t i = 0; i < S; ++i)
    for (int64_t c = 0; c < C; ++c) EXPECT_DOUBLE_EQ(g[i * C + c], w[i] * x[rows[i] * C + c]);
  // combine: out[t] += Σ over t's slots of w·y, token-major index built by hand
  std::vector<int32_t> begin = {0, 2, 3, 4, 4, 7}, slots = {1, 2, 5, 3, 0, 4, 6};
  auto out = random_vec(N * C, 23);
  auto ref = out;
  for (int64_t i = 0; i < S; ++i)
    for (int64_t c = 0; c < C; ++c) ref[rows[i] * C + c] += w[i] * y[i * C + c];
  ops->combine_rows(as_tensor(out, {N, C}), as_tensor(y, {S, C}), as_tensor(begin, {N + 1}),
                    as_tensor(slots, {S}), as_tensor(w, {S}));
  EXPECT_CLOSE(out, ref, 1e-14, 1e-14);
  // row dots: out[i] = ⟨y[i], x[rows[i]]⟩
  std::vector<double> d(static_cast<size_t>(S));
  ops->row_dots(as_tensor(d, {S}), as_tensor(y, {S, C}), as_tensor(x, {N, C}), as_tensor(rows, {S}));
  for (int64_t i = 0; i < S; ++i) {
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += y[i * C + c] * x[rows[i] * C + c];
    EXPECT_NEAR(d[i], s, 1e-14);
  }
  // No slots at all (an empty expert set) is fine.
  std::vector<double> none;
  std::vector<int32_t> no_rows;
  ops->gather_rows(as_tensor(none, {0, C}), as_tensor(x, {N, C}), as_tensor(no_rows, {0}), Tensor{});
}

TEST_F(OpsForward, AdamAndAdamWMatchTheFormulas) {
  for (bool decoupled : {false, true}) {
    auto p = random_vec(37, 15), g = random_vec(37, 16), m = random_vec(37, 17, 0.1),
         v = random_vec(37, 18, 0.1);
    for (auto& e : v) e = std::abs(e);
    auto p0 = p, m0 = m, v0 = v;
    Ops::AdamArgs a{1e-2, 0.9, 0.95, 1e-8, 0.1, decoupled, 3, 0.5};
    ops->adam_update(as_tensor(p, {37}), as_tensor(g, {37}), as_tensor(m, {37}),
                     as_tensor(v, {37}), a);
    for (int i = 0; i < 37; ++i) {
      double gi = g[i] * 0.5 + (decoupled ? 0 : 0.1 * p0[i]);
      const double mi = 0.9 * m0[i] + 0.1 * gi, vi = 0.95 * v0[i] + 0.05 * gi * gi;
      const double mh = mi / (1 - std::pow(0.9, 3)), vh = vi / (1 - std::pow(0.95, 3));
      const double pi = p0[i] - 1e-2 * (mh / (std::sqrt(vh) + 1e-8) + (decoupled ? 0.1 * p0[i] : 0));
      EXPECT_NEAR(m[i], mi, 1e-14);
      EXPECT_NEAR(v[i], vi, 1e-14);
      EXPECT_NEAR(p[i], pi, 1e-12);
    }
  }
}

}  // namespace
}  // namespace sy
