#pragma once
// Parameters (and anything laid out like them, such as optimizer moments) ⇄
// safetensors files, by logical name. The one place that maps a ParamStore to
// files; final weights and checkpoints both go through it.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/params.h"

namespace sy {

const char* safetensors_dtype(DType d);
// Whether a tensor NAME is an expert's weight, for names this rank's ParamStore does
// not hold (another shard's experts in an index file). Registered parameters say it
// themselves: ParamSpec::expert.
bool is_expert_param(const std::string& name);

// Training state that belongs with the weights but is not a parameter: the
// expert-choice thresholds θ of each MoE layer ("blocks.3.moe.router.thresholds"),
// stored in the weights files as F64 vectors, by name.
using RouterState = std::map<std::string, std::vector<double>>;
bool is_router_state(const std::string& name);

// Writes `blocks` (each a host copy of a buffer laid out like params' values)
// to `path`: block k's parameter `name` becomes tensor prefixes[k] + name, for
// the parameters `keep` accepts (all when empty).
void write_param_blocks(const std::string& path, const ParamStore& params,
                        const std::vector<const char*>& blocks, const std::vector<std::string>& prefixes,
                        const std::function<bool(const ParamSpec&)>& keep = {},
                        const std::map<std::string, std::string>& metadata = {},
                        const RouterState& router_state = {});
// The tensor → file map of an index file, checked: a JSON object whose
// "weight_map" maps tensor names to plain file names (no folders) of the same
// directory. Throws Error(checkpoint) naming the file and what is wrong.
std::map<std::string, std::string> read_weight_map(const std::string& index_path);
// {"weight_map": tensor → file} over the <prefix>-rank-*.safetensors files in dir.
nlohmann::json index_shard_files(const std::string& dir, const std::string& prefix);
// Fills `blocks` (host, laid out like params' values) from the files that
// <dir>/<index_file> names, tensor prefixes[k] + name into block k. Missing
// tensors, wrong shapes or dtypes: Error(checkpoint) naming file and tensor.
// Tensors the index names that the model lacks are an error, except router state
// when `router_state` is given (it receives them), and other ranks' experts when
// `experts_sharded` (this rank holds a share of the experts).
void read_param_blocks(const std::string& dir, const std::string& index_file, const ParamStore& params,
                       const std::vector<char*>& blocks, const std::vector<std::string>& prefixes,
                       RouterState* router_state = nullptr, bool experts_sharded = false);

void save_params(const std::string& path, const ParamStore& params,
                 const std::map<std::string, std::string>& metadata = {},
                 const RouterState& router_state = {});
// Every parameter of `params` must be in the file with its shape (extra tensors
// are an error too: they mean the file belongs to another model), except router
// state, which is returned.
RouterState load_params(const std::string& path, ParamStore& params);

// Expert-parallel runs: shard `shard` writes <dir>/model-rank-<shard>.safetensors
// with its experts (shard 0: and every dense weight); after a barrier, shard 0
// calls write_shard_index(), which lists every tensor's file in
// <dir>/model.safetensors.index.json (the Hugging Face layout).
void save_params_sharded(const std::string& dir, int shard, const ParamStore& params,
                         const std::map<std::string, std::string>& metadata = {},
                         const RouterState& router_state = {});
void write_shard_index(const std::string& dir);

// <dir>/weights.json: the SHA-256 of every final weights file (model.safetensors,
// or the index and its shards) and of weights.json's own content, like a
// checkpoint's state.json. Written last, after the weights files.
void write_weights_manifest(const std::string& dir);
// Checks <dir>/weights.json and every file it lists. Returns false when the run has
// no weights.json (an older version's run); throws Error(checkpoint) naming the
// file when anything differs.
bool verify_weights_manifest(const std::string& dir);

// <dir>/model.safetensors, or the files <dir>/model.safetensors.index.json names:
// checked against weights.json, loaded, and refused (Error(checkpoint)) if any
// weight is NaN or infinite. Returns the router state saved with them.
RouterState load_params_from_run(const std::string& dir, ParamStore& params);

}  // namespace sy
