// The checked front of the op interface (src/backend/ops.cpp): a backend that only
// records which of its implementations ran shows that a call breaking the contract
// never reaches any backend (it ends the process, naming the op and the argument),
// that a valid call reaches it exactly once, and that empty calls cost nothing.
// The recording backend computes in f32 only, like the CUDA backend.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "test_util.h"

namespace sy {
namespace {

using test::as_tensor;

class RecordingOps final : public Ops {
 public:
  std::vector<std::string> calls;
  std::string name() const override { return "recording"; }
  Device device() const override { return Device::cpu; }
  bool computes_in(DType t) const override { return t == DType::f32; }
  uint64_t memory_capacity() const override { return 1u << 30; }
  void* allocate(size_t bytes) override { return std::calloc(1, bytes + 64); }
  void deallocate(void* p) override { std::free(p); }

 protected:
  void copy_impl(Tensor, const Tensor&) override { calls.push_back("copy"); }
  void to_host_impl(void*, const Tensor&) override { calls.push_back("to_host"); }
  void from_host_impl(Tensor, const void*) override { calls.push_back("from_host"); }
  void fill_impl(Tensor, double) override { calls.push_back("fill"); }
  void gemm_impl(bool, bool, int64_t, int64_t, int64_t, double, const Tensor&, int64_t,
                 const Tensor&, int64_t, double, Tensor, int64_t, int64_t) override {
    calls.push_back("gemm");
  }
  void embedding_forward_impl(Tensor, const Tensor&, const Tensor&, const Tensor&) override {
    calls.push_back("embedding_forward");
  }
  void embedding_backward_impl(Tensor, Tensor, const Tensor&, const Tensor&) override {
    calls.push_back("embedding_backward");
  }
  void norm_forward_impl(NormKind, Tensor, Tensor, Tensor, const Tensor&, const Tensor&,
                         const Tensor&, double) override {
    calls.push_back("norm_forward");
  }
  void norm_backward_impl(NormKind, Tensor, Tensor, Tensor, const Tensor&, const Tensor&,
                          const Tensor&, const Tensor&, const Tensor&) override {
    calls.push_back("norm_backward");
  }
  void activation_forward_impl(Activation, Tensor, const Tensor&) override {
    calls.push_back("activation_forward");
  }
  void activation_backward_impl(Activation, Tensor, const Tensor&, const Tensor&) override {
    calls.push_back("activation_backward");
  }
  void glu_forward_impl(Activation, Tensor, const Tensor&) override { calls.push_back("glu_forward"); }
  void glu_backward_impl(Activation, Tensor, const Tensor&, const Tensor&) override {
    calls.push_back("glu_backward");
  }
  void softmax_forward_impl(Tensor, const Tensor&) override { calls.push_back("softmax_forward"); }
  void softmax_backward_impl(Tensor, const Tensor&, const Tensor&) override {
    calls.push_back("softmax_backward");
  }
  void attention_forward_impl(Tensor, AttentionCache&, const Tensor&, int64_t, bool) override {
    calls.push_back("attention_forward");
  }
  void attention_backward_impl(Tensor, AttentionCache&, const Tensor&, int64_t, bool) override {
    calls.push_back("attention_backward");
  }
  void attention_decode_impl(Tensor, const Tensor&, Tensor, Tensor, Tensor, int64_t, int64_t) override {
    calls.push_back("attention_decode");
  }
  void attention_fused_forward_impl(Tensor, Tensor, const Tensor&, int64_t, bool) override {
    calls.push_back("attention_fused_forward");
  }
  void attention_fused_backward_impl(Tensor, Tensor, const Tensor&, const Tensor&, const Tensor&,
                                     const Tensor&, int64_t, bool) override {
    calls.push_back("attention_fused_backward");
  }
  void cross_entropy_forward_impl(Tensor, Tensor, Tensor, const Tensor&, const Tensor&,
                                  double) override {
    calls.push_back("cross_entropy_forward");
  }
  void cross_entropy_backward_impl(Tensor, const Tensor&, const Tensor&, const Tensor&, double,
                                   double) override {
    calls.push_back("cross_entropy_backward");
  }
  void gather_rows_impl(Tensor, const Tensor&, const Tensor&, const Tensor&) override {
    calls.push_back("gather_rows");
  }
  void combine_rows_impl(Tensor, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&) override {
    calls.push_back("combine_rows");
  }
  void row_dots_impl(Tensor, const Tensor&, const Tensor&, const Tensor&) override {
    calls.push_back("row_dots");
  }
  void add_impl(Tensor, const Tensor&) override { calls.push_back("add"); }
  void scale_impl(Tensor, double) override { calls.push_back("scale"); }
  double sum_impl(const Tensor&, bool) override {
    calls.push_back("sum");
    return 0;
  }
  void adam_update_impl(Tensor, const Tensor&, Tensor, Tensor, const AdamArgs&) override {
    calls.push_back("adam_update");
  }
};

class OpFront : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
  std::vector<float> f(int64_t n) { return std::vector<float>(static_cast<size_t>(n), 0.5f); }
  std::vector<int32_t> idx(std::vector<int32_t> v) { return v; }
  RecordingOps ops;
};

// MoE dispatch: the three ops whose checks only one backend made before.
TEST_F(OpFront, CombineRowsChecksWeightsBeginAndSlots) {
  const int64_t N = 2, S = 3, C = 4;
  auto out = f(N * C), y = f(S * C), w = f(S), w_bad = f(S + 1);
  auto begin = idx({0, 1, 3}), slots = idx({2, 0, 1}), bad_slots = idx({2, 0, 3});
  auto begin_bad = idx({0, 2, 1});
  ops.combine_rows(as_tensor(out, {N, C}), as_tensor(y, {S, C}), as_tensor(begin, {N + 1}),
                   as_tensor(slots, {S}), as_tensor(w, {S}));
  EXPECT_EQ(ops.calls, std::vector<std::string>{"combine_rows"});
  EXPECT_DEATH(ops.combine_rows(as_tensor(out, {N, C}), as_tensor(y, {S, C}),
                                as_tensor(begin, {N + 1}), as_tensor(slots, {S}),
                                as_tensor(w_bad, {S + 1})),
               "combine_rows weights has 4 elements");
  EXPECT_DEATH(ops.combine_rows(as_tensor(out, {N, C}), as_tensor(y, {S, C}),
                                as_tensor(begin, {N + 1}), as_tensor(bad_slots, {S}),
                                as_tensor(w, {S})),
               "outside \\[0, 3\\)");
  EXPECT_DEATH(ops.combine_rows(as_tensor(out, {N, C}), as_tensor(y, {S, C}),
                                as_tensor(begin_bad, {N + 1}), as_tensor(slots, {S}),
                                as_tensor(w, {S})),
               "combine_rows: begin");
  auto begin_f = f(N + 1);
  EXPECT_DEATH(ops.combine_rows(as_tensor(out, {N, C}), as_tensor(y, {S, C}),
                                as_tensor(begin_f, {N + 1}), as_tensor(slots, {S}),
                                as_tensor(w, {S})),
               "combine_rows begin is f32, expected i32");
  EXPECT_EQ(ops.calls.size(), 1u);
}

TEST_F(OpFront, GatherRowsAndRowDotsCheckSizesDtypesAndRanges) {
  const int64_t N = 3, S = 2, C = 5;
  auto out = f(S * C), x = f(N * C), dots = f(S), dots_bad = f(S + 1);
  auto rows = idx({2, 0}), rows_bad = idx({3, 0});
  ops.gather_rows(as_tensor(out, {S, C}), as_tensor(x, {N, C}), as_tensor(rows, {S}), Tensor{});
  ops.row_dots(as_tensor(dots, {S}), as_tensor(out, {S, C}), as_tensor(x, {N, C}),
               as_tensor(rows, {S}));
  EXPECT_EQ(ops.calls, (std::vector<std::string>{"gather_rows", "row_dots"}));
  EXPECT_DEATH(ops.gather_rows(as_tensor(out, {S, C}), as_tensor(x, {N, C}),
                               as_tensor(rows_bad, {S}), Tensor{}),
               "gather_rows rows\\[0\\] = 3 outside \\[-1, 3\\)");
  // −1 marks an empty slot (a padded plan); anything below is refused.
  auto rows_empty = idx({-1, 0}), rows_negative = idx({-2, 0});
  ops.gather_rows(as_tensor(out, {S, C}), as_tensor(x, {N, C}), as_tensor(rows_empty, {S}), Tensor{});
  EXPECT_DEATH(ops.row_dots(as_tensor(dots, {S}), as_tensor(out, {S, C}), as_tensor(x, {N, C}),
                            as_tensor(rows_negative, {S})),
               "row_dots rows\\[0\\] = -2 outside \\[-1, 3\\)");
  auto out_small = f(S * C - 1);
  EXPECT_DEATH(ops.gather_rows(as_tensor(out_small, {S * C - 1}), as_tensor(x, {N, C}),
                               as_tensor(rows, {S}), Tensor{}),
               "gather_rows out has 9 elements");
  EXPECT_DEATH(ops.row_dots(as_tensor(dots_bad, {S + 1}), as_tensor(out, {S, C}),
                            as_tensor(x, {N, C}), as_tensor(rows, {S})),
               "row_dots out has 3 elements");
  std::vector<double> x64(N * C);
  EXPECT_DEATH(ops.row_dots(as_tensor(dots, {S}), as_tensor(out, {S, C}), as_tensor(x64, {N, C}),
                            as_tensor(rows, {S})),
               "row_dots b is f64, expected f32");
  EXPECT_EQ(ops.calls.size(), 3u);
}

// Attention backward checks every scratch buffer of the cache, dq, dk, dv included.
TEST_F(OpFront, AttentionBackwardChecksTheGradientScratch) {
  const int64_t B = 1, T = 3, NH = 2, D = 2, C = NH * D;
  std::vector<std::vector<float>> store(9);
  AttentionCache cache;
  int i = 0;
  for (Tensor* t : {&cache.q, &cache.k, &cache.v, &cache.out_heads, &cache.dq, &cache.dk, &cache.dv}) {
    store[i] = f(B * NH * T * D);
    *t = as_tensor(store[i++], {B, NH, T, D});
  }
  for (Tensor* t : {&cache.probs, &cache.dprobs}) {
    store[i] = f(B * NH * T * T);
    *t = as_tensor(store[i++], {B, NH, T, T});
  }
  auto dqkv = f(B * T * 3 * C), dout = f(B * T * C);
  ops.attention_backward(as_tensor(dqkv, {B, T, 3 * C}), cache, as_tensor(dout, {B, T, C}),
                         NH, true);
  EXPECT_EQ(ops.calls, std::vector<std::string>{"attention_backward"});
  for (Tensor AttentionCache::*member : {&AttentionCache::dq, &AttentionCache::dk, &AttentionCache::dv}) {
    AttentionCache broken = cache;
    (broken.*member).dims[0] -= 1;  // one (batch·head) too few
    EXPECT_DEATH(ops.attention_backward(as_tensor(dqkv, {B, T, 3 * C}), broken,
                                        as_tensor(dout, {B, T, C}), NH, true),
                 "attention d[qkv] has");
  }
  EXPECT_DEATH(ops.attention_backward(as_tensor(dqkv, {B, T, 3 * C}), cache,
                                      as_tensor(dout, {B, T, C}), 3, true),
               "not divisible by 3 heads");
  EXPECT_EQ(ops.calls.size(), 1u);
}

// Fused attention: lse and delta are one value per (batch, head, row), and head
// dims above the kernel's limit are refused, naming the way out.
TEST_F(OpFront, FusedAttentionChecksItsShapesAndHeadDim) {
  const int64_t B = 1, T = 3, NH = 2, D = 2, C = NH * D;
  auto qkv = f(B * T * 3 * C), out = f(B * T * C), lse = f(B * NH * T), dqkv = f(B * T * 3 * C);
  auto dout = f(B * T * C), delta = f(B * NH * T);
  ops.attention_fused_forward(as_tensor(out, {B, T, C}), as_tensor(lse, {B, NH, T}),
                              as_tensor(qkv, {B, T, 3 * C}), NH, true);
  ops.attention_fused_backward(as_tensor(dqkv, {B, T, 3 * C}), as_tensor(delta, {B, NH, T}),
                               as_tensor(dout, {B, T, C}), as_tensor(qkv, {B, T, 3 * C}),
                               as_tensor(out, {B, T, C}), as_tensor(lse, {B, NH, T}), NH, true);
  EXPECT_EQ(ops.calls, (std::vector<std::string>{"attention_fused_forward", "attention_fused_backward"}));
  EXPECT_DEATH(ops.attention_fused_forward(as_tensor(out, {B, T, C}), as_tensor(lse, {B, NH, T - 1}),
                                           as_tensor(qkv, {B, T, 3 * C}), NH, true),
               "attention_fused lse");
  EXPECT_DEATH(ops.attention_fused_backward(as_tensor(dqkv, {B, T, 3 * C}), as_tensor(delta, {B, T}),
                                            as_tensor(dout, {B, T, C}), as_tensor(qkv, {B, T, 3 * C}),
                                            as_tensor(out, {B, T, C}), as_tensor(lse, {B, NH, T}), NH, true),
               "attention_fused delta");
  const int64_t Cw = 2 * (kFusedAttentionMaxHeadDim + 1);
  auto wide = f(3 * Cw), wide_out = f(Cw), wide_lse = f(2);
  EXPECT_DEATH(ops.attention_fused_forward(as_tensor(wide_out, {1, 1, Cw}), as_tensor(wide_lse, {1, 2, 1}),
                                           as_tensor(wide, {1, 1, 3 * Cw}), 2, true),
               "head dim 129 is above the fused kernel's 128; use attention_kernel: reference");
  EXPECT_EQ(ops.calls.size(), 2u);
}

// Decoding: the position must lie inside the cache, the caches match qkv, the
// scratch holds a score per head and cache row.
TEST_F(OpFront, AttentionDecodeChecksPositionCachesAndScratch) {
  const int64_t B = 2, L = 4, NH = 2, C = 6;
  auto out = f(B * C), qkv = f(B * 3 * C), k = f(B * L * C), v = f(B * L * C), sc = f(B * NH * L);
  auto k_short = f(B * (L - 1) * C), sc_small = f(B * NH * L - 1);
  auto call = [&](int64_t pos, std::vector<float>& kc, int64_t kl, std::vector<float>& s, int64_t heads) {
    ops.attention_decode(as_tensor(out, {B, C}), as_tensor(qkv, {B, 3 * C}), as_tensor(kc, {B, kl, C}),
                         as_tensor(v, {B, L, C}), as_tensor(s, {static_cast<int64_t>(s.size())}), pos, heads);
  };
  call(L - 1, k, L, sc, NH);
  EXPECT_EQ(ops.calls, std::vector<std::string>{"attention_decode"});
  EXPECT_DEATH(call(L, k, L, sc, NH), "position 4 outside the cache of 4 rows");
  EXPECT_DEATH(call(-1, k, L, sc, NH), "position -1 outside");
  EXPECT_DEATH(call(0, k_short, L - 1, sc, NH), "v_cache must be \\[2, 3, 6\\]");
  EXPECT_DEATH(call(0, k, L, sc_small, NH), "attention_decode scores has 15 elements");
  EXPECT_DEATH(call(0, k, L, sc, 4), "4 heads do not divide C = 6");
  EXPECT_EQ(ops.calls.size(), 1u);
}

// The backend's dtypes and memory: f64 is refused by an f32-only backend, and a
// tensor in another device's memory never reaches a kernel.
TEST_F(OpFront, DtypeAndDeviceOfEveryBackend) {
  std::vector<double> x64(8), y64(8);
  EXPECT_DEATH(ops.add(as_tensor(y64, {8}), as_tensor(x64, {8})),
               "add x is f64: the cpu backend does not compute in f64");
  auto x = f(8), y = f(8);
  Tensor on_gpu = as_tensor(x, {8});
  on_gpu.device = Device::cuda;
  EXPECT_DEATH(ops.add(as_tensor(y, {8}), on_gpu), "add x is in cuda memory, but the backend is cpu");
  std::vector<int32_t> ids = {0, 1};
  EXPECT_DEATH(ops.scale(as_tensor(ids, {2}), 2.0), "scale x is i32, expected a floating dtype");
  EXPECT_TRUE(ops.calls.empty());
}

// Bad token ids are bad input (exit 2), not a bug: the data came from a file.
TEST_F(OpFront, TokenIdsOutsideTheVocabularyAreBadInput) {
  const int64_t B = 1, T = 2, V = 4, C = 3;
  auto out = f(B * T * C), wte = f(V * C), wpe = f(T * C);
  auto ids = idx({1, 4});
  EXPECT_EXIT(ops.embedding_forward(as_tensor(out, {B, T, C}), as_tensor(ids, {B, T}),
                                    as_tensor(wte, {V, C}), as_tensor(wpe, {T, C})),
              ::testing::ExitedWithCode(2), "token id 4 at position 1 is outside the vocabulary");
  auto wpe_short = f((T - 1) * C);
  auto ok = idx({1, 3});
  EXPECT_DEATH(ops.embedding_forward(as_tensor(out, {B, T, C}), as_tensor(ok, {B, T}),
                                     as_tensor(wte, {V, C}), as_tensor(wpe_short, {T - 1, C})),
               "embedding wpe \\[1, 3\\] must be");
  EXPECT_TRUE(ops.calls.empty());
}

TEST_F(OpFront, EmptyCallsNeverReachTheBackend) {
  std::vector<float> none(1);
  const Tensor e = as_tensor(none, {1}).view({0});
  ops.add(e, e);
  ops.scale(e, 2.0);
  ops.fill(e, 1.0);
  ops.copy(e, e);
  EXPECT_EQ(ops.sum(e), 0.0);
  auto b = f(6);
  ops.gemm(false, false, 0, 3, 2, 1.0, e, as_tensor(b, {6}), 0.0, e);  // M = 0: nothing to do
  EXPECT_TRUE(ops.calls.empty());
  // K = 0 is not empty: C = beta·C must still be written, by the front, the same
  // way for every backend (beta = 0: a fill that never reads C; else a scale).
  auto c = f(6);
  ops.gemm(false, false, 2, 3, 0, 1.0, e, e, 0.0, as_tensor(c, {6}));
  EXPECT_EQ(ops.calls, std::vector<std::string>{"fill"});
  ops.gemm_strided_batched(false, false, 1, 3, 0, 1.0, e, 0, e, 0, 0.5, as_tensor(c, {6}), 3, 2);
  EXPECT_EQ(ops.calls, (std::vector<std::string>{"fill", "scale", "scale"}));
  ops.gemm(false, false, 2, 3, 0, 1.0, e, e, 1.0, as_tensor(c, {6}));  // beta = 1: nothing to do
  EXPECT_EQ(ops.calls.size(), 3u);
}

}  // namespace
}  // namespace sy
