#pragma once
// Tensor views and owned device buffers. A Tensor is a non-owning, contiguous,
// row-major view (pointer, dtype, device, up to 4 dims); memory is owned by a
// Buffer obtained from a backend's Allocator, once, before the training loop.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace sy {

enum class DType : uint8_t { f32, f64, i32 };
enum class Device : uint8_t { cpu, cuda };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* device_name(Device d);

constexpr int kMaxDims = 4;

// A shape of up to kMaxDims dims, held inline: making a view never allocates.
struct Shape {
  int ndim = 0;
  int64_t dims[kMaxDims] = {0, 0, 0, 0};
  Shape(std::initializer_list<int64_t> d);
  Shape(const std::vector<int64_t>& d);  // NOLINT: implicit on purpose
};

struct Tensor {
  void* ptr = nullptr;
  DType dtype = DType::f32;
  Device device = Device::cpu;
  int ndim = 0;
  int64_t dims[kMaxDims] = {0, 0, 0, 0};

  int64_t numel() const;
  int64_t dim(int i) const { return dims[i < 0 ? ndim + i : i]; }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool empty() const { return ptr == nullptr; }
  template <class T>
  T* data() const {
    return static_cast<T*>(ptr);
  }
  // A view of `shape` starting `offset` elements into this one; must fit inside.
  Tensor view(const Shape& shape, int64_t offset = 0) const;
  // The same memory seen as a flat vector.
  Tensor flat() const { return view({numel()}); }
  std::string shape_str() const;  // "[2, 3]"
};

// Where a Buffer's memory comes from (host RAM, GPU memory...). Implemented by backends.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;  // zero-filled, 64-byte aligned
  virtual void deallocate(void* p) = 0;
  virtual Device device() const = 0;
};

// Owned memory. Move-only.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Allocator& a, size_t bytes);
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Tensor as(DType t, const std::vector<int64_t>& shape) const;

 private:
  Allocator* alloc_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Hands out tensors, each in its own Buffer, and keeps them alive. Used for
// activations and workspaces: everything is allocated in setup, nothing per step.
class Arena {
 public:
  explicit Arena(Allocator& a) : alloc_(&a) {}
  Tensor make(DType t, const std::vector<int64_t>& shape);
  size_t bytes() const { return bytes_; }
  Allocator& allocator() const { return *alloc_; }

 private:
  Allocator* alloc_;
  std::vector<Buffer> buffers_;
  size_t bytes_ = 0;
};

}  // namespace sy
