#include "core/tensor.h"

#include "core/errors.h"

namespace sy {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i32: return 4;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
  }
  return "?";
}

const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

int64_t Tensor::numel() const {
  if (ndim == 0) return ptr ? 1 : 0;
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= dims[i];
  return n;
}

template <class It>
static int fill_dims(int64_t* dims, It begin, It end) {
  int n = 0;
  for (It it = begin; it != end; ++it) {
    SY_CHECK(n < kMaxDims, "a tensor has at most {} dims", kMaxDims);
    dims[n++] = *it;
  }
  return n;
}

// (Assigned in the body: dims is declared after ndim, so a member initialiser of
// ndim would run before dims' own default initialiser wiped what it wrote.)
Shape::Shape(std::initializer_list<int64_t> d) { ndim = fill_dims(dims, d.begin(), d.end()); }
Shape::Shape(const std::vector<int64_t>& d) { ndim = fill_dims(dims, d.begin(), d.end()); }

Tensor Tensor::view(const Shape& shape, int64_t offset) const {
  Tensor t = *this;
  t.ndim = shape.ndim;
  for (int i = 0; i < kMaxDims; ++i) t.dims[i] = shape.dims[i];
  SY_CHECK(offset >= 0 && offset + t.numel() <= numel(),
           "view {} at offset {} does not fit in {}", t.shape_str(), offset, shape_str());
  t.ptr = static_cast<char*>(ptr) + offset * static_cast<int64_t>(dtype_size(dtype));
  return t;
}

std::string Tensor::shape_str() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

Buffer::Buffer(Allocator& a, size_t bytes) : alloc_(&a), bytes_(bytes) {
  ptr_ = bytes ? a.allocate(bytes) : nullptr;
}

Buffer::Buffer(Buffer&& o) noexcept : alloc_(o.alloc_), ptr_(o.ptr_), bytes_(o.bytes_) {
  o.ptr_ = nullptr;
  o.bytes_ = 0;
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) alloc_->deallocate(ptr_);
    alloc_ = o.alloc_;
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

Buffer::~Buffer() {
  if (ptr_) alloc_->deallocate(ptr_);
}

Tensor Buffer::as(DType t, const std::vector<int64_t>& shape) const {
  Tensor whole;
  whole.ptr = ptr_;
  whole.dtype = t;
  whole.device = alloc_ ? alloc_->device() : Device::cpu;
  whole.ndim = 1;
  whole.dims[0] = static_cast<int64_t>(bytes_ / dtype_size(t));
  return whole.view(shape);
}

Tensor Arena::make(DType t, const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const size_t bytes = static_cast<size_t>(n) * dtype_size(t);
  buffers_.emplace_back(*alloc_, bytes);
  bytes_ += bytes;
  return buffers_.back().as(t, shape);
}

}  // namespace sy
