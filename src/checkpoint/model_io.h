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

}  // namespace sy
