#include "model/params.h"

#include <vector>

#include "core/errors.h"
#include "core/rng.h"

namespace sy {

ParamId ParamStore::add(const std::string& name, std::vector<int64_t> shape, Init init, double std,
                        bool decay, bool expert) {
  SY_CHECK(values_.empty(), "parameter '{}' registered after allocate()", name);
  SY_CHECK(!by_name_.count(name), "parameter '{}' registered twice", name);
  ParamSpec s{name, std::move(shape), init, std, decay, total_, 1, expert};
  for (int64_t d : s.shape) s.numel *= d;
  total_ += s.numel;
  specs_.push_back(std::move(s));
  by_name_[name] = size() - 1;
  return size() - 1;
}

void ParamStore::allocate() {
  const size_t bytes = static_cast<size_t>(total_) * dtype_size(dtype_);
  value_buf_ = Buffer(*ops_, bytes);
  grad_buf_ = Buffer(*ops_, bytes);
  values_ = value_buf_.as(dtype_, {total_});
  grads_ = grad_buf_.as(dtype_, {total_});
}

void ParamStore::initialize(uint64_t seed) {
  SY_CHECK(!values_.empty(), "initialize() before allocate()");
  for (const ParamSpec& s : specs_) {
    std::vector<double> host(static_cast<size_t>(s.numel));
    const RngStream rng{seed, hash64(s.name.c_str())};
    for (int64_t i = 0; i < s.numel; ++i)
      host[i] = s.init == Init::normal ? s.std * rng.normal(static_cast<uint64_t>(i))
                : s.init == Init::ones ? 1.0
                                       : 0.0;
    Tensor v = values_.view({s.numel}, s.offset);
    if (dtype_ == DType::f64) {
      ops_->from_host(v, host.data());
    } else {
      std::vector<float> f(host.begin(), host.end());
      ops_->from_host(v, f.data());
    }
  }
}

void ParamStore::zero_grads() { ops_->fill(grads_, 0.0); }

Tensor ParamStore::value(ParamId id) const { return values_.view(specs_[id].shape, specs_[id].offset); }
Tensor ParamStore::grad(ParamId id) const { return grads_.view(specs_[id].shape, specs_[id].offset); }

Tensor ParamStore::span(const Tensor& flat, ParamId first, ParamId last,
                        const Shape& shape) const {
  const int64_t begin = specs_[first].offset, end = specs_[last].offset + specs_[last].numel;
  Tensor t = flat.view({end - begin}, begin);
  return t.view(shape);
}

Tensor ParamStore::value_span(ParamId first, ParamId last, const Shape& shape) const {
  return span(values_, first, last, shape);
}
Tensor ParamStore::grad_span(ParamId first, ParamId last, const Shape& shape) const {
  return span(grads_, first, last, shape);
}

ParamId ParamStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? -1 : it->second;
}

}  // namespace sy
