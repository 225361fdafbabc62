// Every op of the CUDA backend against the CPU backend's op (itself checked against
// double-precision references and finite differences), on random and awkward shapes:
// T = 1, an expert with no tokens, all tokens to one expert, dims not multiples of 8.
// Without a GPU every test reports "skipped: no GPU" (ctest label gpu); where CUDA
// cannot start on a GPU machine, every test fails with the runtime's error.
//
// Tolerances (fp32 mode, |cuda − cpu| ≤ atol + rtol·|cpu|):
//   elementwise, permutes, embedding, Adam ........ rtol 1e-6 (same formula; expf vs
//                                                   the CPU's ≤ 2-ulp exp)
//   row reductions (norm, softmax, loss, dots) .... rtol 1e-5 (summation order differs)
//   GEMM, attention ................................ rtol 1e-5, atol 1e-5·√K
//   permute → unpermute ............................ bitwise
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <iostream>

#include "backend/attention_cache.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/gpu_test.h"
#include "core/errors.h"
#include "test_util.h"

namespace sy {
namespace {

using test::as_tensor;
using test::random_vec;
using test::to_float;

std::vector<float> rand_f(int64_t n, uint64_t seed, double scale = 1.0) {
  return to_float(random_vec(n, seed, scale));
}

class CudaOpsParity : public ::testing::Test {
 protected:
  void SetUp() override {
    SY_REQUIRE_GPUS(1);
    gpu = make_cuda_ops();
  }
  // A device copy of `host` (kept alive by the fixture).
  template <class T>
  Tensor dev(std::vector<T>& host, std::vector<int64_t> shape) {
    const Tensor h = as_tensor(host, shape);
    buffers.emplace_back(*gpu, std::max<size_t>(h.bytes(), 4));
    Tensor d = buffers.back().as(h.dtype, shape);
    if (h.numel() > 0) gpu->from_host(d, host.data());
    return d;
  }
  static std::vector<float> host_of(Ops& ops, const Tensor& d) {
    std::vector<float> v(static_cast<size_t>(d.numel()));
    if (!v.empty()) ops.to_host(v.data(), d);
    return v;
  }
  std::vector<float> down(const Tensor& d) { return host_of(*gpu, d); }

  std::unique_ptr<Ops> cpu = make_cpu_ops();
  std::unique_ptr<Ops> gpu;
  std::deque<Buffer> buffers;
};

TEST_F(CudaOpsParity, GemmEveryTransposeAndAwkwardShapes) {
  for (auto [M, N, K] : {std::array<int64_t, 3>{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {128, 96, 200}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        auto A = rand_f(M * K, 1), B = rand_f(K * N, 2), C = rand_f(M * N, 3);
        auto C_gpu = C;
        const Tensor dA = dev(A, {M * K}), dB = dev(B, {K * N}), dC = dev(C_gpu, {M * N});
        cpu->gemm(ta, tb, M, N, K, 0.7, as_tensor(A, {M * K}), as_tensor(B, {K * N}), 0.3,
                  as_tensor(C, {M * N}));
        gpu->gemm(ta, tb, M, N, K, 0.7, dA, dB, 0.3, dC);
        EXPECT_CLOSE(down(dC), C, 1e-5, 1e-5 * std::sqrt(double(K)))
            << M << "x" << N << "x" << K << " ta " << ta << " tb " << tb;
      }
}

TEST_F(CudaOpsParity, GemmStridedBatched) {
  const int64_t M = 9, N = 11, K = 13, batch = 3;
  auto A = rand_f(batch * M * K, 4), B = rand_f(batch * K * N, 5);
  std::vector<float> C(static_cast<size_t>(batch * M * N), 0.0f), C_gpu = C;
  const Tensor dA = dev(A, {batch * M * K}), dB = dev(B, {batch * K * N}),
               dC = dev(C_gpu, {batch * M * N});
  cpu->gemm_strided_batched(false, true, M, N, K, 1.0, as_tensor(A, {batch * M * K}), M * K,
                            as_tensor(B, {batch * K * N}), K * N, 0.0, as_tensor(C, {batch * M * N}),
                            M * N, batch);
  gpu->gemm_strided_batched(false, true, M, N, K, 1.0, dA, M * K, dB, K * N, 0.0, dC, M * N, batch);
  EXPECT_CLOSE(down(dC), C, 1e-5, 1e-5 * std::sqrt(double(K)));
}

TEST_F(CudaOpsParity, EmbeddingForwardAndBackwardWithRepeatedIds) {
  const int64_t B = 2, T = 5, C = 13, V = 7;
  std::vector<int32_t> ids = {0, 3, 3, 6, 0, 1, 3, 3, 3, 6};  // id 2, 4, 5 unused
  auto wte = rand_f(V * C, 6), wpe = rand_f(T * C, 7), dout = rand_f(B * T * C, 8);
  std::vector<float> out(static_cast<size_t>(B * T * C));
  auto dwte = rand_f(V * C, 9), dwpe = rand_f(T * C, 10);  // backward accumulates onto these
  auto dwte_gpu = dwte, dwpe_gpu = dwpe;
  const Tensor d_ids = dev(ids, {B, T}), d_wte = dev(wte, {V, C}), d_wpe = dev(wpe, {T, C}),
               d_out = dev(out, {B, T, C}), d_dout = dev(dout, {B, T, C}),
               d_dwte = dev(dwte_gpu, {V, C}), d_dwpe = dev(dwpe_gpu, {T, C});
  cpu->embedding_forward(as_tensor(out, {B, T, C}), as_tensor(ids, {B, T}), as_tensor(wte, {V, C}),
                         as_tensor(wpe, {T, C}));
  gpu->embedding_forward(d_out, d_ids, d_wte, d_wpe);
  EXPECT_CLOSE(down(d_out), out, 1e-6, 1e-7);
  cpu->embedding_backward(as_tensor(dwte, {V, C}), as_tensor(dwpe, {T, C}),
                          as_tensor(dout, {B, T, C}), as_tensor(ids, {B, T}));
  gpu->embedding_backward(d_dwte, d_dwpe, d_dout, d_ids);
  EXPECT_CLOSE(down(d_dwte), dwte, 1e-6, 1e-7);
  EXPECT_CLOSE(down(d_dwpe), dwpe, 1e-6, 1e-7);
}

TEST_F(CudaOpsParity, NormsForwardAndBackward) {
  for (NormKind kind : {NormKind::layernorm, NormKind::rmsnorm})
    for (auto [N, C] : {std::array<int64_t, 2>{1, 3}, {5, 7}, {3, 1000}}) {
      auto x = rand_f(N * C, 11, 2.0), w = rand_f(C, 12), b = rand_f(C, 13), dout = rand_f(N * C, 14);
      std::vector<float> out(x.size()), mean(N), rstd(N);
      auto dx = rand_f(N * C, 15), dw = rand_f(C, 16), db = rand_f(C, 17);  // accumulated onto
      auto dx_g = dx, dw_g = dw, db_g = db;
      const Tensor gx = dev(x, {N, C}), gw = dev(w, {C}), gb = dev(b, {C}), gdout = dev(dout, {N, C}),
                   gout = dev(out, {N, C}), gmean = dev(mean, {N}), grstd = dev(rstd, {N}),
                   gdx = dev(dx_g, {N, C}), gdw = dev(dw_g, {C}), gdb = dev(db_g, {C});
      cpu->norm_forward(kind, as_tensor(out, {N, C}), as_tensor(mean, {N}), as_tensor(rstd, {N}),
                        as_tensor(x, {N, C}), as_tensor(w, {C}), as_tensor(b, {C}), 1e-5);
      gpu->norm_forward(kind, gout, gmean, grstd, gx, gw, gb, 1e-5);
      EXPECT_CLOSE(down(gout), out, 1e-5, 1e-6) << norm_name(kind) << " " << N << "x" << C;
      EXPECT_CLOSE(down(grstd), rstd, 1e-5, 1e-6);
      cpu->norm_backward(kind, as_tensor(dx, {N, C}), as_tensor(dw, {C}), as_tensor(db, {C}),
                         as_tensor(dout, {N, C}), as_tensor(x, {N, C}), as_tensor(w, {C}),
                         as_tensor(mean, {N}), as_tensor(rstd, {N}));
      gpu->norm_backward(kind, gdx, gdw, gdb, gdout, gx, gw, gmean, grstd);
      EXPECT_CLOSE(down(gdx), dx, 1e-5, 1e-6) << norm_name(kind) << " " << N << "x" << C;
      EXPECT_CLOSE(down(gdw), dw, 1e-5, 1e-6);
      if (kind == NormKind::layernorm) {
        EXPECT_CLOSE(down(gdb), db, 1e-5, 1e-6);
      }
    }
}

// dw, db of a norm reduce over all rows in two stages (row chunks, then the chunks
// in order): many rows (several chunks, a ragged last one), and the same bits twice.
TEST_F(CudaOpsParity, NormWeightGradientsOverManyRowsAreDeterministic) {
  for (NormKind kind : {NormKind::layernorm, NormKind::rmsnorm})
    for (auto [N, C] : {std::array<int64_t, 2>{200, 33}, {4103, 70}, {40000, 5}}) {
      auto x = rand_f(N * C, 21, 2.0), w = rand_f(C, 22), b = rand_f(C, 23), dout = rand_f(N * C, 24);
      std::vector<float> out(x.size()), mean(N), rstd(N), dx(x.size(), 0.0f), dw(C, 0.0f), db(C, 0.0f);
      auto dx_g = dx, dw_g = dw, db_g = db;
      const Tensor gx = dev(x, {N, C}), gw = dev(w, {C}), gb = dev(b, {C}), gdout = dev(dout, {N, C}),
                   gout = dev(out, {N, C}), gmean = dev(mean, {N}), grstd = dev(rstd, {N}),
                   gdx = dev(dx_g, {N, C}), gdw = dev(dw_g, {C}), gdb = dev(db_g, {C});
      cpu->norm_forward(kind, as_tensor(out, {N, C}), as_tensor(mean, {N}), as_tensor(rstd, {N}),
                        as_tensor(x, {N, C}), as_tensor(w, {C}), as_tensor(b, {C}), 1e-5);
      gpu->norm_forward(kind, gout, gmean, grstd, gx, gw, gb, 1e-5);
      cpu->norm_backward(kind, as_tensor(dx, {N, C}), as_tensor(dw, {C}), as_tensor(db, {C}),
                         as_tensor(dout, {N, C}), as_tensor(x, {N, C}), as_tensor(w, {C}),
                         as_tensor(mean, {N}), as_tensor(rstd, {N}));
      gpu->norm_backward(kind, gdx, gdw, gdb, gdout, gx, gw, gmean, grstd);
      // A sum of N terms of size ~1: absolute tolerance grows like √N.
      const double atol = 1e-5 * std::sqrt(static_cast<double>(N));
      EXPECT_CLOSE(down(gdw), dw, 1e-4, atol) << norm_name(kind) << " " << N << "x" << C;
      if (kind == NormKind::layernorm) {
        EXPECT_CLOSE(down(gdb), db, 1e-4, atol);
      }
      const std::vector<float> first_dw = down(gdw), first_db = down(gdb);
      gpu->fill(gdw, 0.0);
      gpu->fill(gdb, 0.0);
      gpu->norm_backward(kind, gdx, gdw, gdb, gdout, gx, gw, gmean, grstd);
      EXPECT_EQ(down(gdw), first_dw) << "dw differs between two runs";
      if (kind == NormKind::layernorm) {
        EXPECT_EQ(down(gdb), first_db) << "db differs between two runs";
      }
    }
}

// K = 0 is cuBLAS's: C = β·C, and β = 0 writes zeros over NaN.
TEST_F(CudaOpsParity, GemmWithEmptyInnerDimension) {
  const int64_t M = 3, N = 4;
  for (double beta : {0.0, 0.5}) {
    std::vector<float> C(M * N, std::nanf("")), none(1);
    for (int64_t i = 0; i < M * N; i += 2) C[i] = static_cast<float>(i);
    auto Cg = C;
    const Tensor dC = dev(Cg, {M * N}), dnone = dev(none, {1}).view({0});
    gpu->gemm(false, false, M, N, 0, 1.0, dnone, dnone, beta, dC);
    const std::vector<float> got = down(dC);
    for (int64_t i = 0; i < M * N; ++i) {
      if (beta == 0.0) {
        EXPECT_EQ(got[i], 0.0f) << i;
      } else if (std::isnan(C[i])) {
        EXPECT_TRUE(std::isnan(got[i])) << i;
      } else {
        EXPECT_EQ(got[i], 0.5f * C[i]) << i;
      }
    }
  }
}

TEST_F(CudaOpsParity, ActivationsAndGlu) {
  for (Activation act : {Activation::gelu, Activation::silu, Activation::relu})
    for (int64_t N : {1, 37}) {
      const int64_t H = 19;
      auto ag = rand_f(N * 2 * H, 20, 3.0), dh = rand_f(N * H, 21);
      std::vector<float> h(N * H), dag(N * 2 * H), y(N * 2 * H), dx(N * 2 * H);
      const Tensor g_ag = dev(ag, {N, 2 * H}), g_dh = dev(dh, {N, H}), g_h = dev(h, {N, H}),
                   g_dag = dev(dag, {N, 2 * H}), g_y = dev(y, {N * 2 * H}), g_dx = dev(dx, {N * 2 * H});
      cpu->glu_forward(act, as_tensor(h, {N, H}), as_tensor(ag, {N, 2 * H}));
      gpu->glu_forward(act, g_h, g_ag);
      EXPECT_CLOSE(down(g_h), h, 1e-6, 1e-6) << activation_name(act);
      cpu->glu_backward(act, as_tensor(dag, {N, 2 * H}), as_tensor(dh, {N, H}), as_tensor(ag, {N, 2 * H}));
      gpu->glu_backward(act, g_dag, g_dh, g_ag);
      EXPECT_CLOSE(down(g_dag), dag, 1e-6, 1e-6) << activation_name(act);
      cpu->activation_forward(act, as_tensor(y, {N * 2 * H}), as_tensor(ag, {N * 2 * H}));
      gpu->activation_forward(act, g_y, g_ag.view({N * 2 * H}));
      EXPECT_CLOSE(down(g_y), y, 1e-6, 1e-6);
      cpu->activation_backward(act, as_tensor(dx, {N * 2 * H}), as_tensor(ag, {N * 2 * H}),
                               as_tensor(ag, {N * 2 * H}));
      gpu->activation_backward(act, g_dx, g_ag.view({N * 2 * H}), g_ag.view({N * 2 * H}));
      EXPECT_CLOSE(down(g_dx), dx, 1e-6, 1e-6);
    }
}

TEST_F(CudaOpsParity, SoftmaxForwardAndBackward) {
  for (auto [R, V] : {std::array<int64_t, 2>{1, 1}, {3, 7}, {4, 1000}}) {
    auto x = rand_f(R * V, 22, 4.0), dout = rand_f(R * V, 23);
    std::vector<float> out(R * V), dx(R * V);
    const Tensor gx = dev(x, {R, V}), gdout = dev(dout, {R, V}), gout = dev(out, {R, V}),
                 gdx = dev(dx, {R, V});
    cpu->softmax_forward(as_tensor(out, {R, V}), as_tensor(x, {R, V}));
    gpu->softmax_forward(gout, gx);
    EXPECT_CLOSE(down(gout), out, 1e-5, 1e-7);
    cpu->softmax_backward(as_tensor(dx, {R, V}), as_tensor(dout, {R, V}), as_tensor(out, {R, V}));
    gpu->softmax_backward(gdx, gdout, gout);
    EXPECT_CLOSE(down(gdx), dx, 1e-5, 1e-6);
  }
}

TEST_F(CudaOpsParity, AttentionForwardAndBackward) {
  struct Case { int64_t B, T, NH, D; };
  for (Case s : {Case{1, 1, 1, 4}, Case{2, 5, 3, 4}, Case{1, 33, 2, 9}})
    for (bool causal : {true, false}) {
      const int64_t C = s.NH * s.D, n = s.B * s.T * C;
      auto qkv = rand_f(3 * n, 30), dout = rand_f(n, 31);
      std::vector<float> out(n), dqkv(3 * n);
      // CPU cache over host float vectors, GPU cache over device buffers.
      std::vector<std::vector<float>> store(9);
      AttentionCache hc, gc;
      int i = 0;
      for (auto [h, g] : {std::pair{&hc.q, &gc.q}, {&hc.k, &gc.k}, {&hc.v, &gc.v},
                          {&hc.out_heads, &gc.out_heads}, {&hc.dq, &gc.dq}, {&hc.dk, &gc.dk},
                          {&hc.dv, &gc.dv}}) {
        store[i].assign(n, 0.0f);
        *h = as_tensor(store[i], {s.B, s.NH, s.T, s.D});
        *g = dev(store[i++], {s.B, s.NH, s.T, s.D});
      }
      for (auto [h, g] : {std::pair{&hc.probs, &gc.probs}, {&hc.dprobs, &gc.dprobs}}) {
        store[i].assign(s.B * s.NH * s.T * s.T, 0.0f);
        *h = as_tensor(store[i], {s.B, s.NH, s.T, s.T});
        *g = dev(store[i++], {s.B, s.NH, s.T, s.T});
      }
      const Tensor gqkv = dev(qkv, {s.B, s.T, 3 * C}), gout = dev(out, {s.B, s.T, C}),
                   gdout = dev(dout, {s.B, s.T, C}), gdqkv = dev(dqkv, {s.B, s.T, 3 * C});
      cpu->attention_forward(as_tensor(out, {s.B, s.T, C}), hc, as_tensor(qkv, {s.B, s.T, 3 * C}),
                             s.NH, causal);
      gpu->attention_forward(gout, gc, gqkv, s.NH, causal);
      const double atol = 1e-5 * std::sqrt(double(s.T));
      EXPECT_CLOSE(down(gout), out, 1e-5, atol) << s.B << "," << s.T << " causal " << causal;
      cpu->attention_backward(as_tensor(dqkv, {s.B, s.T, 3 * C}), hc, as_tensor(dout, {s.B, s.T, C}),
                              s.NH, causal);
      gpu->attention_backward(gdqkv, gc, gdout, s.NH, causal);
      EXPECT_CLOSE(down(gdqkv), dqkv, 1e-5, atol) << s.B << "," << s.T << " causal " << causal;
    }
}

TEST_F(CudaOpsParity, CrossEntropyWithSmoothingAndUnlabelledRows) {
  for (int64_t V : {7, 1000}) {
    const int64_t N = 5;
    auto z = rand_f(N * V, 40, 3.0);
    std::vector<int32_t> y = {0, static_cast<int32_t>(V - 1), -1, 3, 2};
    std::vector<float> loss(N), nll(N), lse(N), dz(N * V);
    const Tensor gz = dev(z, {N, V}), gy = dev(y, {N}), gloss = dev(loss, {N}), gnll = dev(nll, {N}),
                 glse = dev(lse, {N}), gdz = dev(dz, {N, V});
    cpu->cross_entropy_forward(as_tensor(loss, {N}), as_tensor(nll, {N}), as_tensor(lse, {N}),
                               as_tensor(z, {N, V}), as_tensor(y, {N}), 0.1);
    gpu->cross_entropy_forward(gloss, gnll, glse, gz, gy, 0.1);
    EXPECT_CLOSE(down(gloss), loss, 1e-5, 1e-6) << "V " << V;
    EXPECT_CLOSE(down(gnll), nll, 1e-5, 1e-6);
    EXPECT_CLOSE(down(glse), lse, 1e-5, 1e-6);
    EXPECT_EQ(down(gloss)[2], 0.0f);  // the unlabelled row
    cpu->cross_entropy_backward(as_tensor(dz, {N, V}), as_tensor(z, {N, V}), as_tensor(lse, {N}),
                                as_tensor(y, {N}), 0.1, 0.5);
    gpu->cross_entropy_backward(gdz, gz, glse, gy, 0.1, 0.5);
    EXPECT_CLOSE(down(gdz), dz, 1e-5, 1e-7);
  }
}

// Dispatch lists of three routing situations over N tokens and E = 3 experts:
// balanced, one expert with no tokens, every token to one expert.
struct Plan {
  std::vector<int32_t> rows;   // slot → token (expert-major, as the MoE layer packs them)
  std::vector<int32_t> begin;  // token → its slots in `slots`, [N+1]
  std::vector<int32_t> slots;
};
Plan make_plan(const std::vector<int>& expert_of, int E) {
  const int N = static_cast<int>(expert_of.size());
  Plan p;
  for (int e = 0; e < E; ++e)
    for (int t = 0; t < N; ++t)
      if (expert_of[t] == e) p.rows.push_back(t);
  std::vector<std::vector<int32_t>> of_token(N);
  for (size_t s = 0; s < p.rows.size(); ++s) of_token[p.rows[s]].push_back(static_cast<int32_t>(s));
  p.begin.push_back(0);
  for (int t = 0; t < N; ++t) {
    p.slots.insert(p.slots.end(), of_token[t].begin(), of_token[t].end());
    p.begin.push_back(static_cast<int32_t>(p.slots.size()));
  }
  return p;
}

TEST_F(CudaOpsParity, PermuteThenUnpermuteIsTheIdentityBitwise) {
  const int64_t N = 11, C = 13;
  for (const std::vector<int>& experts :
       {std::vector<int>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1}, std::vector<int>{0, 2, 2, 0, 0, 2, 0, 2, 2, 0, 0},
        std::vector<int>(11, 1)}) {
    Plan p = make_plan(experts, 3);
    auto x = rand_f(N * C, 50);
    std::vector<float> packed(N * C), back(N * C, 0.0f);
    const Tensor gx = dev(x, {N, C}), gpacked = dev(packed, {N, C}), gback = dev(back, {N, C}),
                 grows = dev(p.rows, {N}), gbegin = dev(p.begin, {N + 1}), gslots = dev(p.slots, {N});
    gpu->gather_rows(gpacked, gx, grows, Tensor{});
    gpu->combine_rows(gback, gpacked, gbegin, gslots, Tensor{});
    EXPECT_EQ(down(gback), x);  // exact: one slot per token, weight 1, onto zeros
  }
}

TEST_F(CudaOpsParity, GatherCombineAndRowDotsWithGates) {
  const int64_t N = 9, C = 21;
  // Top-2-like: every token to two experts, expert 1 gets none.
  std::vector<int32_t> rows = {0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<int32_t> begin(N + 1), slots;
  for (int64_t t = 0; t < N; ++t) {
    begin[t] = static_cast<int32_t>(slots.size());
    slots.push_back(static_cast<int32_t>(t));
    slots.push_back(static_cast<int32_t>(t + N));
  }
  begin[N] = static_cast<int32_t>(slots.size());
  const int64_t S = 2 * N;
  auto x = rand_f(N * C, 51), w = rand_f(S, 52), y = rand_f(S * C, 53), out = rand_f(N * C, 54);
  std::vector<float> packed(S * C), dots(S);
  auto out_g = out;
  const Tensor gx = dev(x, {N, C}), gw = dev(w, {S}), gy = dev(y, {S, C}), gout = dev(out_g, {N, C}),
               gpacked = dev(packed, {S, C}), gdots = dev(dots, {S}), grows = dev(rows, {S}),
               gbegin = dev(begin, {N + 1}), gslots = dev(slots, {S});
  cpu->gather_rows(as_tensor(packed, {S, C}), as_tensor(x, {N, C}), as_tensor(rows, {S}), as_tensor(w, {S}));
  gpu->gather_rows(gpacked, gx, grows, gw);
  EXPECT_CLOSE(down(gpacked), packed, 1e-6, 1e-7);
  cpu->combine_rows(as_tensor(out, {N, C}), as_tensor(y, {S, C}), as_tensor(begin, {N + 1}),
                    as_tensor(slots, {S}), as_tensor(w, {S}));
  gpu->combine_rows(gout, gy, gbegin, gslots, gw);
  EXPECT_CLOSE(down(gout), out, 1e-6, 1e-7);
  cpu->row_dots(as_tensor(dots, {S}), as_tensor(y, {S, C}), as_tensor(x, {N, C}), as_tensor(rows, {S}));
  gpu->row_dots(gdots, gy, gx, grows);
  EXPECT_CLOSE(down(gdots), dots, 1e-5, 1e-6);
}

TEST_F(CudaOpsParity, ElementwiseAndDeterministicSums) {
  const int64_t n = 100003;  // not a multiple of any block size
  auto x = rand_f(n, 60), y = rand_f(n, 61);
  auto y_g = y;
  const Tensor gx = dev(x, {n}), gy = dev(y_g, {n});
  cpu->add(as_tensor(y, {n}), as_tensor(x, {n}));
  gpu->add(gy, gx);
  cpu->scale(as_tensor(y, {n}), -0.25);
  gpu->scale(gy, -0.25);
  EXPECT_EQ(down(gy), y);  // one rounding each, same order: bitwise
  EXPECT_NEAR(gpu->sum(gx), cpu->sum(as_tensor(x, {n})), 1e-9 * n);
  const double ss = gpu->sum_squares(gx);
  EXPECT_NEAR(ss, cpu->sum_squares(as_tensor(x, {n})), 1e-12 * ss * n);
  EXPECT_EQ(ss, gpu->sum_squares(gx));  // the same bits on every call
  gpu->fill(gy, 2.5);
  EXPECT_EQ(down(gy), std::vector<float>(n, 2.5f));
}

TEST_F(CudaOpsParity, AdamAndAdamW) {
  for (bool decoupled : {false, true}) {
    const int64_t n = 1001;
    auto p = rand_f(n, 70), g = rand_f(n, 71);
    std::vector<float> m(n, 0.0f), v(n, 0.0f);
    auto p_g = p, m_g = m, v_g = v;
    const Tensor gp = dev(p_g, {n}), gg = dev(g, {n}), gm = dev(m_g, {n}), gv = dev(v_g, {n});
    for (int64_t step = 1; step <= 3; ++step) {
      const Ops::AdamArgs a{1e-2, 0.9, 0.95, 1e-8, 0.1, decoupled, step, 0.5};
      cpu->adam_update(as_tensor(p, {n}), as_tensor(g, {n}), as_tensor(m, {n}), as_tensor(v, {n}), a);
      gpu->adam_update(gp, gg, gm, gv, a);
    }
    EXPECT_CLOSE(down(gp), p, 1e-6, 1e-7) << (decoupled ? "adamw" : "adam");
    EXPECT_CLOSE(down(gm), m, 1e-6, 1e-8);
    EXPECT_CLOSE(down(gv), v, 1e-6, 1e-8);
  }
}

// Never skipped: with a GPU the backend starts; without one it says so, in the
// runtime's own words; on a GPU machine whose CUDA cannot start, it names the error.
TEST(CudaBackend, StartsOrSaysWhyNot) {
  const CudaProbe probe = probe_cuda();
  if (probe.state == CudaProbe::State::ok) {
    const auto ops = make_cuda_ops();
    EXPECT_EQ(ops->device(), Device::cuda);
    return;
  }
  try {
    make_cuda_ops();
    FAIL() << "make_cuda_ops succeeded, but the probe said: " << probe.message;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input);
    const std::string what = e.what();
    EXPECT_NE(what.find(probe.state == CudaProbe::State::no_gpu ? "no CUDA device"
                                                                : "CUDA could not start"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find(probe.message), std::string::npos) << what;  // the runtime's own words
  }
}

// The device check of scripts/gpu_check.sh: a GPU is usable, and says what it is.
TEST(CudaDevice, UsableAndNamed) {
  SY_REQUIRE_GPUS(1);
  const auto ops = make_cuda_ops();
  std::cout << "device: " << ops->name() << "\n";
  Buffer buf(*ops, 1000 * sizeof(float));
  const Tensor t = buf.as(DType::f32, {1000});
  ops->fill(t, 3.0);
  std::vector<float> host(1000);
  ops->to_host(host.data(), t);
  EXPECT_EQ(host, std::vector<float>(1000, 3.0f));
  EXPECT_EQ(ops->sum(t), 3000.0);
}

// Only "no device", or no NVIDIA driver at all, mean "no GPU" (a skip); every other
// start-up error of a GPU machine is an error to report.
TEST(CudaBackend, StartUpErrorsAreErrorsNotMissingGpus) {
  using S = CudaProbe::State;
  EXPECT_EQ(classify_cuda_start(cudaSuccess, true), S::ok);
  EXPECT_EQ(classify_cuda_start(cudaErrorNoDevice, true), S::no_gpu);
  EXPECT_EQ(classify_cuda_start(cudaErrorNoDevice, false), S::no_gpu);
  EXPECT_EQ(classify_cuda_start(cudaErrorInsufficientDriver, false), S::no_gpu);
  EXPECT_EQ(classify_cuda_start(cudaErrorInsufficientDriver, true), S::error);  // driver too old
  EXPECT_EQ(classify_cuda_start(cudaErrorStubLibrary, true), S::error);
  EXPECT_EQ(classify_cuda_start(cudaErrorInitializationError, true), S::error);
  EXPECT_EQ(classify_cuda_start(cudaErrorNoKernelImageForDevice, true), S::error);
  EXPECT_EQ(classify_cuda_start(cudaErrorDevicesUnavailable, true), S::error);
}

}  // namespace
}  // namespace sy
