#include "data/data_config.h"

namespace sy {

void DataConfig::validate(Problems& p) const {
  if (source != DataSource::synthetic)
    p.require(!path.empty(), "data.path", path, "is required unless data.source is synthetic");
  p.require(synthetic_tokens >= 1024, "data.synthetic_tokens", synthetic_tokens,
            "must be at least 1024");
  p.require(synthetic_branching >= 1, "data.synthetic_branching", synthetic_branching,
            "must be positive");
  p.require(eval_fraction > 0 && eval_fraction < 1, "data.eval_fraction", eval_fraction,
            "must be in (0, 1)");
  p.require(mask_prob > 0 && mask_prob < 1, "data.mask_prob", mask_prob, "must be in (0, 1)");
}

void PrepareConfig::validate(Problems& p) const {
  p.require(val_fraction >= 0 && val_fraction < 0.5, "prepare.val_fraction", val_fraction,
            "must be in [0, 0.5)");
  p.require(test_fraction >= 0 && test_fraction < 0.5, "prepare.test_fraction", test_fraction,
            "must be in [0, 0.5)");
  p.require(max_shard_tokens >= 1024, "prepare.max_shard_tokens", max_shard_tokens,
            "must be at least 1024");
  p.require(character_coverage > 0.9 && character_coverage <= 1.0, "prepare.character_coverage",
            character_coverage, "must be in (0.9, 1]");
}

}  // namespace sy
