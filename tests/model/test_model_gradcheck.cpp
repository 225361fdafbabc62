// The whole model's loss gradient against central finite differences, in double
// precision, for every parameter, over the model variants the config allows.
#include <gtest/gtest.h>

#include "model/model_fixture.h"
#include "model/transformer.h"
#include "test_util.h"

namespace sy {
namespace {

struct Variant {
  const char* name;
  Arch arch;
  NormKind norm;
  PosKind pos;
  Activation act;
  bool tied;
  double smoothing;
  int64_t logits_chunk = 0;  // train.logits_chunk_rows
  bool fused_attention = false;  // attention_kernel: fused
};

class ModelGradCheck : public ::testing::TestWithParam<Variant> {};

TEST_P(ModelGradCheck, EveryParameterMatchesFiniteDifferences) {
  const Variant v = GetParam();
  auto ops = make_ops(Device::cpu);
  ModelConfig cfg = test::tiny_model(v.arch);
  cfg.norm = v.norm;
  cfg.positions = v.pos;
  cfg.activation = v.act;
  cfg.tie_embeddings = v.tied;
  const int64_t B = 2, T = 5;
  Transformer model(*ops, cfg, v.smoothing, DType::f64);
  model.set_logits_chunk(v.logits_chunk);
  model.set_fused_attention(v.fused_attention);
  model.allocate(B, T);
  model.init_params(7);
  auto ids = test::random_tokens(B * T, cfg.vocab_size, 1);
  auto targets = test::random_tokens(B * T, cfg.vocab_size, 2);
  targets[3] = -1;  // a position without loss

  model.params().zero_grads();
  model.forward(ids.data(), targets.data());
  model.backward(1.0);

  ParamStore& ps = model.params();
  double* w = ps.values().data<double>();
  const double* g = ps.grads().data<double>();
  const double h = 1e-5;
  double worst = 0;
  std::string worst_name;
  for (ParamId p = 0; p < ps.size(); ++p) {
    const ParamSpec& s = ps.spec(p);
    for (int64_t i = 0; i < s.numel; ++i) {
      const int64_t k = s.offset + i;
      const double saved = w[k];
      w[k] = saved + h;
      const double up = model.forward(ids.data(), targets.data()).loss;
      w[k] = saved - h;
      const double down = model.forward(ids.data(), targets.data()).loss;
      w[k] = saved;
      const double numeric = (up - down) / (2 * h);
      const double err = std::abs(numeric - g[k]) / (1e-7 + 1e-5 * std::abs(numeric));
      if (err > worst) worst = err, worst_name = s.name + "[" + std::to_string(i) + "]";
    }
  }
  EXPECT_LE(worst, 1.0) << "worst parameter " << worst_name;
}

INSTANTIATE_TEST_SUITE_P(
    Variants, ModelGradCheck,
    ::testing::Values(
        Variant{"decoder_ln_learned_gelu_tied", Arch::decoder, NormKind::layernorm, PosKind::learned,
                Activation::gelu, true, 0.0},
        Variant{"decoder_rms_sinusoidal_silu_untied_smoothed", Arch::decoder, NormKind::rmsnorm,
                PosKind::sinusoidal, Activation::silu, false, 0.1},
        Variant{"encoder_ln_learned_gelu_smoothed", Arch::encoder, NormKind::layernorm,
                PosKind::learned, Activation::gelu, true, 0.1},
        Variant{"encoder_rms_sinusoidal_relu", Arch::encoder, NormKind::rmsnorm,
                PosKind::sinusoidal, Activation::relu, true, 0.0},
        // The classifier 3 rows at a time (10 rows: 3 + 3 + 3 + 1).
        Variant{"decoder_untied_smoothed_logits_chunk3", Arch::decoder, NormKind::layernorm, PosKind::learned,
                Activation::gelu, false, 0.1, 3},
        Variant{"encoder_tied_logits_chunk3", Arch::encoder, NormKind::rmsnorm, PosKind::learned,
                Activation::silu, true, 0.1, 3},
        // Fused attention (tiles, online softmax, probabilities recomputed in the backward).
        Variant{"decoder_fused_attention", Arch::decoder, NormKind::layernorm, PosKind::learned,
                Activation::gelu, false, 0.1, 0, true},
        Variant{"encoder_fused_attention", Arch::encoder, NormKind::rmsnorm, PosKind::sinusoidal,
                Activation::silu, true, 0.0, 0, true}),
    [](const auto& info) { return std::string(info.param.name); });

// A chunked classifier computes the same function: loss and every gradient equal
// the whole-logits path to rounding (f32), for chunks that do and do not divide
// the rows, with the classifier's gradient in the forward pass or recomputed in
// the backward pass (the same bits), and its logits buffer holds only a chunk.
TEST(Model, LogitsChunksGiveTheSameLossAndGradients) {
  auto ops = make_ops(Device::cpu);
  ModelConfig cfg = test::model_of(Arch::decoder, 97, 16, 2, 2, 24, 16);
  cfg.tie_embeddings = false;
  const int64_t B = 3, T = 16, N = B * T;
  auto ids = test::random_tokens(N, cfg.vocab_size, 5);
  auto targets = test::random_tokens(N, cfg.vocab_size, 6);
  targets[7] = targets[20] = -1;
  const double scale = 1.0 / 46;  // the targets
  auto run = [&](int64_t chunk, size_t* bytes, bool grads_in_forward = false) {
    Transformer m(*ops, cfg, 0.1, DType::f32);
    m.set_logits_chunk(chunk);
    m.allocate(B, T);
    m.init_params(11);
    m.params().zero_grads();
    const LossSums s = grads_in_forward ? m.forward(ids.data(), targets.data(), scale)
                                        : m.forward(ids.data(), targets.data());
    EXPECT_EQ(s.count, 46);
    m.backward(scale);
    std::vector<float> g(static_cast<size_t>(m.params().numel()));
    ops->to_host(g.data(), m.params().grads());
    if (bytes) *bytes = m.activation_bytes();
    return std::make_pair(s, g);
  };
  size_t whole_bytes = 0, chunk_bytes = 0;
  const auto [s0, g0] = run(0, &whole_bytes);
  for (int64_t chunk : {1, 7, 16, 47, 48, 100}) {
    const auto [s, g] = run(chunk, chunk == 7 ? &chunk_bytes : nullptr);
    EXPECT_NEAR(s.loss, s0.loss, 1e-6 * std::abs(s0.loss)) << "chunk " << chunk;
    EXPECT_NEAR(s.nll, s0.nll, 1e-6 * std::abs(s0.nll)) << "chunk " << chunk;
    EXPECT_EQ(s.count, s0.count);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < g.size(); ++i) scale = std::max(scale, double(std::abs(g0[i])));
    for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::abs(double(g[i]) - g0[i]) / scale);
    EXPECT_LT(worst, 1e-5) << "chunk " << chunk;
    // The classifier's gradient computed in the forward pass, from the same
    // logits: the same bits as recomputing them in backward.
    const auto [s2, g2] = run(chunk, nullptr, true);
    EXPECT_EQ(s2.loss, s.loss) << "chunk " << chunk;
    EXPECT_EQ(g2, g) << "chunk " << chunk;
  }
  // [48, 97] logits become [7, 97]: 41 rows × 97 × 4 bytes fewer (to the arena's alignment).
  EXPECT_NEAR(double(whole_bytes) - double(chunk_bytes), double((N - 7) * cfg.vocab_size * 4), 128.0);  // alignment
}

// Fused attention computes the same function: loss and every gradient equal the
// reference attention's to rounding (f32), over sequences that span two key tiles
// (T = 40 > kFusedAttentionTile), decoder and encoder; and its activations lack
// the [B, NH, T, T] probabilities (and their gradient).
TEST(Model, FusedAttentionGivesTheSameLossAndGradients) {
  auto ops = make_ops(Device::cpu);
  for (Arch arch : {Arch::decoder, Arch::encoder}) {
    ModelConfig cfg = test::model_of(arch, 61, 16, 2, 2, 24, 40);
    const int64_t B = 2, T = 40, N = B * T;
    auto ids = test::random_tokens(N, cfg.vocab_size, 8);
    auto targets = test::random_tokens(N, cfg.vocab_size, 9);
    auto run = [&](bool fused, size_t* bytes) {
      Transformer m(*ops, cfg, 0.1, DType::f32);
      m.set_fused_attention(fused);
      m.allocate(B, T);
      m.init_params(13);
      m.params().zero_grads();
      const LossSums s = m.forward(ids.data(), targets.data());
      m.backward(1.0 / static_cast<double>(s.count));
      std::vector<float> g(static_cast<size_t>(m.params().numel()));
      ops->to_host(g.data(), m.params().grads());
      *bytes = m.activation_bytes();
      return std::make_pair(s, g);
    };
    size_t ref_bytes = 0, fused_bytes = 0;
    const auto [s0, g0] = run(false, &ref_bytes);
    const auto [s1, g1] = run(true, &fused_bytes);
    EXPECT_NEAR(s1.loss, s0.loss, 1e-6 * std::abs(s0.loss));
    double worst = 0, scale = 0;
    for (size_t i = 0; i < g0.size(); ++i) scale = std::max(scale, double(std::abs(g0[i])));
    for (size_t i = 0; i < g0.size(); ++i) worst = std::max(worst, std::abs(double(g1[i]) - g0[i]) / scale);
    EXPECT_LT(worst, 1e-5);
    // Per layer: probabilities (and the shared dprobs) [B, NH, T, T] gone, q, k, v and
    // heads copies gone; only a log-sum-exp per row added.
    const double probs = double(B * cfg.n_heads * T * T) * 4;
    EXPECT_GT(double(ref_bytes) - double(fused_bytes), probs * cfg.n_layers) << (arch == Arch::decoder ? "decoder" : "encoder");
  }
}

TEST(Model, Float32ForwardAgreesWithFloat64) {
  auto ops = make_ops(Device::cpu);
  const ModelConfig cfg = test::tiny_model(Arch::decoder);
  Transformer m32(*ops, cfg, 0.1, DType::f32), m64(*ops, cfg, 0.1, DType::f64);
  m32.allocate(2, 5);
  m64.allocate(2, 5);
  m32.init_params(3);
  m64.init_params(3);
  auto ids = test::random_tokens(10, cfg.vocab_size, 4);
  const LossSums a = m32.forward(ids.data(), ids.data());
  const LossSums b = m64.forward(ids.data(), ids.data());
  EXPECT_NEAR(a.loss, b.loss, 1e-5 * b.loss);
  EXPECT_EQ(a.count, 10);
}

TEST(Model, ParameterNamesAreLogicalAndComplete) {
  auto ops = make_ops(Device::cpu);
  ModelConfig cfg = test::tiny_model(Arch::decoder);
  cfg.tie_embeddings = false;
  Transformer m(*ops, cfg, 0.0);
  const ParamStore& ps = m.params();
  for (const char* name : {"embed.tokens", "embed.positions", "blocks.0.norm1.weight",
                           "blocks.1.attn.w_qkv", "blocks.1.attn.w_o", "blocks.0.ffn.w_in",
                           "blocks.0.ffn.w_gate", "blocks.0.ffn.w_out", "norm_f.bias", "head.weight"})
    EXPECT_GE(ps.find(name), 0) << name;
  EXPECT_EQ(ps.spec(ps.find("blocks.0.ffn.w_in")).shape, (std::vector<int64_t>{12, 8}));
  int64_t total = 0;
  for (ParamId p = 0; p < ps.size(); ++p) total += ps.spec(p).numel;
  EXPECT_EQ(total, ps.numel());
  // Initialisation depends on the name, not on the registration order.
  Transformer m2(*ops, cfg, 0.0);
  m.init_params(5);
  m2.init_params(5);
  const ParamId a = m.params().find("blocks.1.ffn.w_out");
  EXPECT_EQ(m.params().value(a).data<float>()[3], m2.params().value(a).data<float>()[3]);
}

}  // namespace
}  // namespace sy
