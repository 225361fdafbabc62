// Fused attention on the CPU beyond the op table (which checks it against the naive
// reference in f32/f64 and its backward against finite differences): with bf16
// operands it stays close to the reference attention in the same mode (both round
// the probabilities, at different points: the reference its normalised ones, the
// fused op each tile's running ones); and it repeats its bits. (Its shape checks:
// test_op_front.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "test_util.h"

namespace sy {
namespace {

struct Shape {
  int64_t B, T, C, NH;
  bool causal;
};

// out (and dqkv from the same dout) of reference and fused attention on one input.
struct Results {
  std::vector<float> out, dqkv;
};

Results run_attention(Ops& ops, const Shape& s, bool fused, uint64_t seed) {
  const int64_t D = s.C / s.NH, n = s.B * s.T * s.C;
  Buffer qkv_b(ops, 3 * n * 4), out_b(ops, n * 4), dout_b(ops, n * 4), dqkv_b(ops, 3 * n * 4);
  Tensor qkv = qkv_b.as(DType::f32, {s.B, s.T, 3 * s.C}), out = out_b.as(DType::f32, {s.B, s.T, s.C});
  Tensor dout = dout_b.as(DType::f32, {s.B, s.T, s.C}), dqkv = dqkv_b.as(DType::f32, {s.B, s.T, 3 * s.C});
  const std::vector<double> x = test::random_vec(3 * n, seed, 1.0), g = test::random_vec(n, seed + 1, 1.0);
  const std::vector<float> xf(x.begin(), x.end()), gf(g.begin(), g.end());
  ops.from_host(qkv, xf.data());
  ops.from_host(dout, gf.data());
  const int64_t rows = s.B * s.NH * s.T, heads = s.B * s.NH * s.T * D;
  Buffer lse_b(ops, rows * 4), delta_b(ops, rows * 4), cache_b(ops, (7 * heads + 2 * rows * s.T) * 4);
  if (fused) {
    Tensor lse = lse_b.as(DType::f32, {s.B, s.NH, s.T}), delta = delta_b.as(DType::f32, {s.B, s.NH, s.T});
    ops.attention_fused_forward(out, lse, qkv, s.NH, s.causal);
    ops.attention_fused_backward(dqkv, delta, dout, qkv, out, lse, s.NH, s.causal);
  } else {
    AttentionCache c;
    const std::vector<int64_t> hd{s.B, s.NH, s.T, D}, tt{s.B, s.NH, s.T, s.T};
    Tensor* parts[] = {&c.q, &c.k, &c.v, &c.out_heads, &c.dq, &c.dk, &c.dv};
    const Tensor all = cache_b.as(DType::f32, {7 * heads + 2 * rows * s.T});
    for (int i = 0; i < 7; ++i) *parts[i] = all.view(hd, i * heads);
    c.probs = all.view(tt, 7 * heads);
    c.dprobs = all.view(tt, 7 * heads + rows * s.T);
    ops.attention_forward(out, c, qkv, s.NH, s.causal);
    ops.attention_backward(dqkv, c, dout, s.NH, s.causal);
  }
  Results r{std::vector<float>(n), std::vector<float>(3 * n)};
  ops.to_host(r.out.data(), out);
  ops.to_host(r.dqkv.data(), dqkv);
  return r;
}

// max |a − b| / max |b|: the error relative to the output's scale.
double scaled_gap(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) scale = std::max(scale, double(std::abs(b[i])));
  for (size_t i = 0; i < b.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]));
  return worst / scale;
}

const Shape kShapes[] = {{2, 70, 128, 2, true}, {2, 70, 128, 2, false}, {1, 33, 256, 2, true}};

TEST(FusedAttention, MatchesTheReferenceAttentionInFp32) {
  auto cpu = make_cpu_ops();
  for (const Shape& s : kShapes) {
    const Results ref = run_attention(*cpu, s, false, 3), fused = run_attention(*cpu, s, true, 3);
    EXPECT_LT(scaled_gap(fused.out, ref.out), 1e-5) << "T " << s.T << " causal " << s.causal;
    EXPECT_LT(scaled_gap(fused.dqkv, ref.dqkv), 1e-5) << "T " << s.T << " causal " << s.causal;
  }
}

// With bf16 operands both paths round q, k, v and the probabilities once (2⁻⁹
// relative each), so they differ from fp32 by ≈ 3e-3 of the output's scale and from
// each other by ≈ 2e-3 (measured at these shapes: 1.8–2.1e-3 out, 1.8–2.5e-3 dqkv).

TEST(FusedAttention, StaysCloseToTheReferenceWithBf16Operands) {
  auto cpu = make_cpu_ops();
  for (const Shape& s : kShapes) {
    const Results fp32 = run_attention(*cpu, s, true, 5);
    cpu->set_bf16_operands(true);
    const Results ref = run_attention(*cpu, s, false, 5), fused = run_attention(*cpu, s, true, 5);
    cpu->set_bf16_operands(false);
    const double gap_out = scaled_gap(fused.out, ref.out), gap_grad = scaled_gap(fused.dqkv, ref.dqkv);
    EXPECT_LT(gap_out, 5e-3) << "T " << s.T << " causal " << s.causal;
    EXPECT_LT(gap_grad, 6e-3) << "T " << s.T << " causal " << s.causal;
    // and the rounding happened: bf16 fused is not the fp32 result
    EXPECT_GT(scaled_gap(fused.out, fp32.out), 1e-3) << "T " << s.T;
  }
}

TEST(FusedAttention, RepeatsItsBits) {
  auto cpu = make_cpu_ops();
  const Shape s{2, 70, 128, 2, true};
  const Results a = run_attention(*cpu, s, true, 7), b = run_attention(*cpu, s, true, 7);
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.dqkv, b.dqkv);
}

}  // namespace
}  // namespace sy
