// Device routing (src/moe/device_routing.h) against the host rules of routing.h,
// its oracle: the same chosen (token, expert) pairs in the same dispatch order, the
// same gates bit for bit, the same drop counts, for every token-choice rule and
// expert choice, over group sizes, expert counts and capacities (ties included:
// the contract's tie-break, the larger value then the smaller index). Built with
// Thrust's OpenMP backend (test_device_routing), and by nvcc for the GPU
// (test_device_routing_cuda.cu, which skips without one).
#include <gtest/gtest.h>

#include <vector>

#include "moe/device_routing.h"
#include "moe/routing.h"
#include "test_util.h"

// Each test's first statement: nothing on the OpenMP backend; on CUDA, skip
// unless a GPU is there (test_device_routing_cuda.cu defines it).
#ifndef SY_DEVICE_ROUTING_NEEDS
#define SY_DEVICE_ROUTING_NEEDS() \
  do {                            \
  } while (0)
#endif

namespace sy {
namespace {

template <class V>
std::vector<typename V::value_type> host(const V& v) {
  return std::vector<typename V::value_type>(v.begin(), v.end());
}

void expect_same(const GroupRoute& want, const device_routing::DeviceRoute& got, const std::string& what) {
  const auto token = host(got.token), expert = host(got.expert);
  const auto gate = host(got.gate);
  ASSERT_EQ(token.size(), want.choices.size()) << what;
  for (size_t i = 0; i < token.size(); ++i) {
    EXPECT_EQ(token[i], want.choices[i].token) << what << " slot " << i;
    EXPECT_EQ(expert[i], want.choices[i].expert) << what << " slot " << i;
    EXPECT_EQ(gate[i], want.choices[i].gate) << what << " slot " << i;
  }
  EXPECT_EQ(got.dropped, want.dropped) << what;
}

// Softmax rows of random logits [S, E] (float: the router's dtype on a device).
std::vector<float> probabilities(int64_t S, int64_t E, uint64_t seed, bool ties) {
  std::vector<double> z = test::random_vec(S * E, seed, 2.0);
  if (ties)  // whole rows and columns of equal values
    for (int64_t t = 0; t < S; ++t)
      for (int64_t e = 0; e < E; ++e)
        if ((t + e) % 3 == 0) z[t * E + e] = 0.5;
  std::vector<float> p(z.size());
  for (int64_t t = 0; t < S; ++t) {
    double m = -1e300, s = 0;
    for (int64_t e = 0; e < E; ++e) m = std::max(m, z[t * E + e]);
    for (int64_t e = 0; e < E; ++e) s += std::exp(z[t * E + e] - m);
    for (int64_t e = 0; e < E; ++e) p[t * E + e] = static_cast<float>(std::exp(z[t * E + e] - m) / s);
  }
  return p;
}

struct Shape {
  int64_t S, E;
};
const Shape kShapes[] = {{1, 2}, {7, 3}, {16, 4}, {64, 8}, {130, 16}};

TEST(DeviceRoutingOracle, SwitchTop1EqualsTheHostRule) {
  SY_DEVICE_ROUTING_NEEDS();
  for (bool ties : {false, true})
    for (const Shape& s : kShapes)
      for (double factor : {0.5, 1.0, 2.0, -1.0}) {
        const auto p = probabilities(s.S, s.E, 11 + s.S, ties);
        const int64_t C = token_choice_capacity(factor, 1, s.S, s.E);
        const thrust::device_vector<float> dp(p.begin(), p.end());
        expect_same(route_switch_top1(p.data(), s.S, s.E, C), device_routing::switch_top1(dp, s.S, s.E, C),
                    "S " + std::to_string(s.S) + " E " + std::to_string(s.E) + " C " + std::to_string(C));
      }
}

TEST(DeviceRoutingOracle, GshardTop2EqualsTheHostRuleWithAndWithoutTheRandomSecond) {
  SY_DEVICE_ROUTING_NEEDS();
  for (bool ties : {false, true})
    for (const Shape& s : kShapes)
      for (double factor : {0.5, 1.0, 2.0}) {
        const auto p = probabilities(s.S, s.E, 21 + s.S, ties);
        const int64_t C = token_choice_capacity(factor, 2, s.S, s.E);
        std::vector<float> u(static_cast<size_t>(s.S));
        const auto r = test::random_vec(s.S, 5 + s.S, 1.0);
        for (int64_t t = 0; t < s.S; ++t) u[t] = static_cast<float>(std::abs(r[t]) / 2.0);
        const thrust::device_vector<float> dp(p.begin(), p.end()), du(u.begin(), u.end());
        const std::string what = "S " + std::to_string(s.S) + " E " + std::to_string(s.E);
        expect_same(route_gshard_top2(p.data(), s.S, s.E, C, nullptr),
                    device_routing::gshard_top2(dp, s.S, s.E, C, nullptr), what + " all");
        expect_same(route_gshard_top2(p.data(), s.S, s.E, C, u.data()),
                    device_routing::gshard_top2(dp, s.S, s.E, C, &du), what + " random");
      }
}

TEST(DeviceRoutingOracle, NoisyTopkEqualsTheHostRule) {
  SY_DEVICE_ROUTING_NEEDS();
  for (bool ties : {false, true})
    for (const Shape& s : kShapes)
      for (int64_t k : {1, 2, 3})
        if (k <= s.E) {
          const auto h = probabilities(s.S, s.E, 31 + s.S, ties);
          const int64_t C = token_choice_capacity(1.25, k, s.S, s.E);
          const thrust::device_vector<float> dh(h.begin(), h.end());
          expect_same(route_noisy_topk(h.data(), s.S, s.E, k, C), device_routing::noisy_topk(dh, s.S, s.E, k, C),
                      "S " + std::to_string(s.S) + " E " + std::to_string(s.E) + " k " + std::to_string(k));
        }
}

TEST(DeviceRoutingOracle, ExpertChoiceEqualsTheHostRule) {
  SY_DEVICE_ROUTING_NEEDS();
  for (bool ties : {false, true})
    for (const Shape& s : kShapes)
      for (double c : {0.5, 1.0, 2.0, 4.0}) {
        const auto p = probabilities(s.S, s.E, 41 + s.S, ties);
        const int64_t C = expert_choice_capacity(c, s.S, s.E);
        const thrust::device_vector<float> dp(p.begin(), p.end());
        expect_same(route_expert_choice(p.data(), s.S, s.E, C), device_routing::expert_choice(dp, s.S, s.E, C),
                    "S " + std::to_string(s.S) + " E " + std::to_string(s.E) + " C " + std::to_string(C));
      }
}

// The hand-checked vectors of docs/routing.md's tie rule: equal values go to the
// smaller index, for tokens (expert choice) and for experts (token choice).
TEST(DeviceRoutingOracle, TiesGoToTheSmallerIndex) {
  SY_DEVICE_ROUTING_NEEDS();
  const std::vector<float> p = {0.5f, 0.5f,   // token 0: a tie between the experts
                                0.5f, 0.5f,   // token 1: the same
                                0.25f, 0.75f};
  const thrust::device_vector<float> dp(p.begin(), p.end());
  const auto sw = device_routing::switch_top1(dp, 3, 2, 3);
  EXPECT_EQ(host(sw.expert), (std::vector<int32_t>{0, 0, 1}));  // tokens 0, 1 → expert 0
  EXPECT_EQ(host(sw.token), (std::vector<int32_t>{0, 1, 2}));
  const auto ec = device_routing::expert_choice(dp, 3, 2, 1);
  EXPECT_EQ(host(ec.token), (std::vector<int32_t>{0, 2}));  // expert 0: tokens 0 and 1 tie → 0
}

}  // namespace
}  // namespace sy
