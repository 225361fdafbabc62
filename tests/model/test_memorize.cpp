// A small model memorises a fixed token stream: the loss falls below a threshold
// within a bounded number of steps, for the decoder and the masked-LM encoder.
#include <gtest/gtest.h>

#include "data/loader.h"
#include "model/model_fixture.h"
#include "model/transformer.h"
#include "model/fixed_batch_training.h"

namespace sy {
namespace {

double train_on_fixed_batch(Arch arch, int steps) {
  auto ops = make_ops(Device::cpu);
  const ModelConfig cfg = test::model_of(arch, 32, 32, 2, 4, 64, 16);
  const int64_t B = 4, T = 16;
  Transformer model(*ops, cfg, 0.0);
  model.allocate(B, T);
  model.init_params(11);
  // Random tokens: nothing to learn but the stream itself.
  auto stream = test::random_tokens(B * T + 1, cfg.vocab_size - 1, 12);
  std::vector<int32_t> ids(stream.begin(), stream.end() - 1), targets(stream.begin() + 1, stream.end());
  if (arch == Arch::encoder) {
    targets = ids;
    mask_tokens(ids.data(), targets.data(), B * T, cfg.vocab_size, cfg.vocab_size - 1, 0.3, 13, 0);
  }
  return test::train_fixed_batch(*ops, model, ids, targets, steps).back();
}

TEST(Memorize, DecoderLearnsAFixedStream) {
  // ln(31) ≈ 3.43 at the start; memorised means close to 0.
  EXPECT_LT(train_on_fixed_batch(Arch::decoder, 150), 0.05);
}

TEST(Memorize, EncoderLearnsMaskedTokens) {
  EXPECT_LT(train_on_fixed_batch(Arch::encoder, 150), 0.05);
}

}  // namespace
}  // namespace sy
