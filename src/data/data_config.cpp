#include "data/data_config.h"

namespace sy {

void DataConfig::validate(Problems& p) const {
  if (source == DataSource::bytes)
    p.require(!path.empty(), "data.path", path, "is required when data.source is bytes");
  p.require(synthetic_tokens >= 1024, "data.synthetic_tokens", synthetic_tokens,
            "must be at least 1024");
  p.require(synthetic_branching >= 1, "data.synthetic_branching", synthetic_branching,
            "must be positive");
  p.require(eval_fraction > 0 && eval_fraction < 1, "data.eval_fraction", eval_fraction,
            "must be in (0, 1)");
  p.require(mask_prob > 0 && mask_prob < 1, "data.mask_prob", mask_prob, "must be in (0, 1)");
}

}  // namespace sy
