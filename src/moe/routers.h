#pragma once
// One factory per router (each in its own file).
#include <memory>
#include <string>

#include "moe/router.h"

namespace sy {

std::unique_ptr<Router> make_switch_top1(LayerEnv, const std::string&, const MoeConfig&, int64_t, int, Arch);
std::unique_ptr<Router> make_gshard_top2(LayerEnv, const std::string&, const MoeConfig&, int64_t, int, Arch);
std::unique_ptr<Router> make_noisy_topk(LayerEnv, const std::string&, const MoeConfig&, int64_t, int, Arch);
std::unique_ptr<Router> make_expert_choice(LayerEnv, const std::string&, const MoeConfig&, int64_t, int, Arch);

}  // namespace sy
