#include "train/verify.h"

#include <memory>

#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "core/errors.h"
#include "model/transformer.h"
#include "moe/moe_model.h"

namespace sy {

void verify_checkpoint(const std::string& dir) {
  const CheckpointState st = read_checkpoint_state(dir);  // checksums, file list, counters
  Config cfg;
  try {
    cfg = parse_config(st.config_yaml, dir + "/state.json (its config)");
  } catch (const Error& e) {
    throw Error(ExitCode::checkpoint, std::string("the checkpoint's config does not load in this "
                                                  "version: ") + e.what());
  }
  auto ops = make_ops(Device::cpu);
  // Every expert (an expert-parallel checkpoint's shards together hold them all).
  std::unique_ptr<MoeModel> moe;
  if (cfg.moe.enabled()) moe = std::make_unique<MoeModel>(cfg.model, cfg.moe);
  Transformer model(*ops, cfg.model, cfg.train.label_smoothing, DType::f32,
                    moe ? moe->factory() : FfnFactory{});
  ParamStore& params = model.params();
  Buffer m(*ops, params.values().bytes()), v(*ops, params.values().bytes());
  load_checkpoint_tensors(dir, params, m.as(DType::f32, {params.numel()}),
                          v.as(DType::f32, {params.numel()}));
}

}  // namespace sy
