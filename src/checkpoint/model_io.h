#pragma once
// Model weights ⇄ a safetensors file, by logical parameter name.
#include <map>
#include <string>

#include "model/params.h"

namespace sy {

void save_params(const std::string& path, const ParamStore& params,
                 const std::map<std::string, std::string>& metadata = {});
// Every parameter of `params` must be in the file with its shape (extra tensors
// are an error too: they mean the file belongs to another model).
void load_params(const std::string& path, ParamStore& params);

// Expert-parallel runs: shard `shard` of `n_shards` writes
// <dir>/model-rank-<shard>.safetensors with its experts (shard 0: and every dense
// weight); after a barrier, shard 0 calls write_shard_index(), which lists every
// tensor's file in <dir>/model.safetensors.index.json (the Hugging Face layout).
void save_params_sharded(const std::string& dir, int shard, int n_shards, const ParamStore& params,
                         const std::map<std::string, std::string>& metadata = {});
void write_shard_index(const std::string& dir, int n_shards);
// <dir>/model.safetensors, or the files <dir>/model.safetensors.index.json names.
void load_params_from_run(const std::string& dir, ParamStore& params);

}  // namespace sy
