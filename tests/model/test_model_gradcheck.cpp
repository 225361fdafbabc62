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
                PosKind::sinusoidal, Activation::relu, true, 0.0}),
    [](const auto& info) { return std::string(info.param.name); });

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
