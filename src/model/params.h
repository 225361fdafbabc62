#pragma once
// The parameter registry: every trainable tensor under a logical name
// (`blocks.3.ffn.w_in`) with its shape and initialiser, packed in registration
// order into one flat value buffer and one flat gradient buffer. Checkpoints,
// optimizers and parallelism address parameters by these names.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/ops.h"

namespace sy {

enum class Init { normal, zeros, ones };

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  Init init = Init::normal;
  double std = 0.02;   // for Init::normal
  bool decay = true;   // weight decay applies (matrices yes; norms, biases no)
  int64_t offset = 0;  // into the flat buffers, set at registration
  int64_t numel = 0;
  // An expert's weight: held by the ranks of one expert-parallel shard (its
  // gradient reduced over the data-parallel group, saved by that shard) rather
  // than replicated on every rank.
  bool expert = false;
};

using ParamId = int;

class ParamStore {
 public:
  ParamStore(Ops& ops, DType dtype) : ops_(&ops), dtype_(dtype) {}

  // Registration (before allocate()). Names must be unique.
  ParamId add(const std::string& name, std::vector<int64_t> shape, Init init, double std = 0.0,
              bool decay = true, bool expert = false);
  void allocate();
  // Every parameter from its own stream (seed, hash(name)): independent of
  // registration order and of how parameters are spread over ranks.
  void initialize(uint64_t seed);
  void zero_grads();

  Tensor value(ParamId id) const;
  Tensor grad(ParamId id) const;
  // [first..last] registered consecutively, seen as one tensor of `shape`.
  Tensor value_span(ParamId first, ParamId last, const Shape& shape) const;
  Tensor grad_span(ParamId first, ParamId last, const Shape& shape) const;
  Tensor values() const { return values_; }  // all, flat
  Tensor grads() const { return grads_; }    // all, flat

  int size() const { return static_cast<int>(specs_.size()); }
  const ParamSpec& spec(ParamId id) const { return specs_[id]; }
  ParamId find(const std::string& name) const;  // -1 if absent
  int64_t numel() const { return total_; }
  DType dtype() const { return dtype_; }
  Ops& ops() const { return *ops_; }

 private:
  Tensor span(const Tensor& flat, ParamId first, ParamId last, const Shape& shape) const;
  Ops* ops_;
  DType dtype_;
  std::vector<ParamSpec> specs_;
  std::unordered_map<std::string, ParamId> by_name_;
  int64_t total_ = 0;
  Buffer value_buf_, grad_buf_;
  Tensor values_, grads_;
};

}  // namespace sy
