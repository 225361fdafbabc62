// precision: bf16 on the CPU, the reference a GPU's bf16 path is checked against:
// rounding to bf16 (nearest, ties to even), and products of bf16-rounded operands
// accumulated in fp32; fp32 mode and the router's fp32 scope untouched. Also the
// backend's memory accounting that bench reports.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "core/bf16.h"
#include "core/errors.h"
#include "test_util.h"

namespace sy {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(Bf16, RoundsToNearestTiesToEven) {
  EXPECT_EQ(bits(round_to_bf16(1.0f)), 0x3f800000u);
  EXPECT_EQ(bits(round_to_bf16(from_bits(0x3f808000u))), 0x3f800000u);  // tie, even below
  EXPECT_EQ(bits(round_to_bf16(from_bits(0x3f818000u))), 0x3f820000u);  // tie, even above
  EXPECT_EQ(bits(round_to_bf16(from_bits(0x3f808001u))), 0x3f810000u);  // past the tie
  EXPECT_EQ(bits(round_to_bf16(from_bits(0x3f807fffu))), 0x3f800000u);
  EXPECT_EQ(bits(round_to_bf16(from_bits(0xbf818000u))), 0xbf820000u);  // sign kept
  EXPECT_EQ(round_to_bf16(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(round_to_bf16(from_bits(0x7f800001u))));  // a NaN with low bits only
  EXPECT_TRUE(std::isinf(round_to_bf16(std::numeric_limits<float>::max())));  // past bf16's largest
  EXPECT_EQ(round_to_bf16(0.0f), 0.0f);
}

struct Gemm {
  std::unique_ptr<Ops> ops = make_cpu_ops();
  int64_t M = 13, N = 7, K = 37;
  std::vector<float> a = test::to_float(test::random_vec(M * K, 1)), b = test::to_float(test::random_vec(K * N, 2));
  std::vector<float> run(bool bf16, bool fp32_scope = false) {
    Buffer ba(*ops, a.size() * 4), bb(*ops, b.size() * 4), bc(*ops, static_cast<size_t>(M * N) * 4);
    Tensor A = ba.as(DType::f32, {M, K}), B = bb.as(DType::f32, {N, K}), C = bc.as(DType::f32, {M, N});
    ops->from_host(A, a.data());
    ops->from_host(B, b.data());
    ops->set_bf16_operands(bf16);
    {
      std::unique_ptr<Ops::Fp32Operands> scope;
      if (fp32_scope) scope = std::make_unique<Ops::Fp32Operands>(*ops);
      ops->gemm(false, true, M, N, K, 1.0, A, B, 0.0, C);
    }
    EXPECT_EQ(ops->bf16_operands(), bf16) << "the fp32 scope restores the mode";
    ops->set_bf16_operands(false);
    std::vector<float> c(static_cast<size_t>(M * N));
    ops->to_host(c.data(), C);
    return c;
  }
  // Σ_k op(a)[m,k]·op(b)[k,n] in double, operands rounded to bf16 or not.
  double reference(int64_t m, int64_t n, bool round) const {
    double s = 0;
    for (int64_t k = 0; k < K; ++k) {
      const float x = a[m * K + k], y = b[n * K + k];
      s += double(round ? round_to_bf16(x) : x) * double(round ? round_to_bf16(y) : y);
    }
    return s;
  }
};

TEST(Bf16, GemmRoundsBothOperandsAndAccumulatesInFp32) {
  Gemm g;
  const std::vector<float> bf = g.run(true), fp = g.run(false), scoped = g.run(true, true);
  double worst_bf = 0, worst_fp = 0, apart = 0;
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t n = 0; n < g.N; ++n) {
      const size_t i = static_cast<size_t>(m * g.N + n);
      worst_bf = std::max(worst_bf, std::abs(bf[i] - g.reference(m, n, true)));
      worst_fp = std::max(worst_fp, std::abs(fp[i] - g.reference(m, n, false)));
      apart = std::max(apart, std::abs(double(bf[i]) - fp[i]));
      EXPECT_EQ(scoped[i], fp[i]) << "Fp32Operands: the fp32 product";
    }
  EXPECT_LT(worst_bf, 1e-5);  // fp32 accumulation of exact products
  EXPECT_LT(worst_fp, 1e-5);
  EXPECT_GT(apart, 1e-3);  // bf16 operands are visibly not fp32 ones (8 mantissa bits)
}

TEST(Bf16, StridedBatchedRoundsEveryMember) {
  auto ops = make_cpu_ops();
  const int64_t M = 3, N = 4, K = 5, batch = 3;
  const std::vector<float> a = test::to_float(test::random_vec(batch * M * K, 3));
  const std::vector<float> b = test::to_float(test::random_vec(K * N, 4));  // shared: stride 0
  Buffer ba(*ops, a.size() * 4), bb(*ops, b.size() * 4), bc(*ops, static_cast<size_t>(batch * M * N) * 4);
  Tensor A = ba.as(DType::f32, {batch * M * K}), B = bb.as(DType::f32, {K * N}), C = bc.as(DType::f32, {batch * M * N});
  ops->from_host(A, a.data());
  ops->from_host(B, b.data());
  ops->set_bf16_operands(true);
  ops->gemm_strided_batched(false, false, M, N, K, 1.0, A, M * K, B, 0, 0.0, C, M * N, batch);
  std::vector<float> c(static_cast<size_t>(batch * M * N));
  ops->to_host(c.data(), C);
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += double(round_to_bf16(a[i * M * K + m * K + k])) * double(round_to_bf16(b[k * N + n]));
        EXPECT_NEAR(c[i * M * N + m * N + n], s, 1e-5) << i << " " << m << " " << n;
      }
}

TEST(Bf16, Float64ProductsAreNotRounded) {
  auto ops = make_cpu_ops();
  const std::vector<double> a = test::random_vec(6, 5), b = test::random_vec(6, 6);
  Buffer ba(*ops, 48), bb(*ops, 48), bc(*ops, 8);
  Tensor A = ba.as(DType::f64, {1, 6}), B = bb.as(DType::f64, {6, 1}), C = bc.as(DType::f64, {1, 1});
  ops->from_host(A, a.data());
  ops->from_host(B, b.data());
  ops->set_bf16_operands(true);
  ops->gemm(false, false, 1, 1, 6, 1.0, A, B, 0.0, C);
  double c = 0, want = 0;
  ops->to_host(&c, C);
  for (int i = 0; i < 6; ++i) want += a[i] * b[i];
  EXPECT_NEAR(c, want, 1e-15);  // gradient checks stay exact
}

}  // namespace
}  // namespace sy

namespace sy {
namespace {

// bench's peak memory: what a backend has allocated now and at most, freed
// buffers leaving the peak where it was.
TEST(BackendMemory, CountsBytesInUseAndThePeak) {
  auto ops = make_cpu_ops();
  const uint64_t base = ops->bytes_in_use();
  {
    Buffer a(*ops, 1000), b(*ops, 64 * 1024);
    EXPECT_EQ(ops->bytes_in_use() - base, 1024u + 64u * 1024u);  // rounded to 64 bytes
    { Buffer c(*ops, 128); }
    EXPECT_EQ(ops->peak_bytes() - base, 1024u + 64u * 1024u + 128u);
  }
  EXPECT_EQ(ops->bytes_in_use(), base);
  EXPECT_EQ(ops->peak_bytes() - base, 1024u + 64u * 1024u + 128u);
}

}  // namespace
}  // namespace sy
