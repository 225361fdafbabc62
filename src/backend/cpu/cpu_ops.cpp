// The CPU backend: memory, fills and elementwise helpers, deterministic sums. The
// layer ops live beside their kernels (cpu_norm.cpp, cpu_attention.cpp, ...).
#include <omp.h>

#include <cblas.h>

#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_ops_impl.h"

namespace sy {

namespace {

template <class T>
void fill_values(T* p, int64_t n, T v) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = v;
}

template <class T>
void add_values(T* y, const T* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

template <class T>
void scale_values(T* p, int64_t n, T v) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] *= v;
}

}  // namespace

std::unique_ptr<Ops> make_cpu_ops() { return std::make_unique<CpuOps>(); }

CpuOps::CpuOps() = default;

std::string CpuOps::name() const {
  // The config string names the build's baseline target; the kernel is the one
  // chosen for this processor at load time (DYNAMIC_ARCH).
  std::string config = openblas_get_config();
  if (config.rfind("OpenBLAS ", 0) == 0) config = config.substr(9);
  return fmt::format("cpu ({} OpenMP threads, OpenBLAS {}, kernel {})", omp_get_max_threads(), config,
                     openblas_get_corename());
}

std::string cpu_blas_kernel_override() {
#if defined(__x86_64__)
  if (std::getenv("OPENBLAS_CORETYPE")) return "";
  std::string core = openblas_get_corename();
  for (char& c : core) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // Kernels that use AVX2 or better: OpenBLAS chose well enough.
  for (const char* good : {"haswell", "skylakex", "cooperlake", "sapphirerapids", "zen", "excavator"})
    if (core == good) return "";
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  if (avx512) return __builtin_cpu_supports("avx512bf16") ? "COOPERLAKE" : "SKYLAKEX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "HASWELL";
#endif
  return "";
}

void* CpuOps::allocate(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fatalf(ExitCode::internal, "out of host memory allocating {} bytes", bytes);
  // Touch every page now so the training step never page-faults on first use.
  std::memset(p, 0, rounded);
  note_allocated(p, rounded);
  return p;
}

void CpuOps::deallocate(void* p) {
  note_freed(p);
  std::free(p);
}

uint64_t CpuOps::memory_capacity() const {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : UINT64_MAX;
}

void CpuOps::copy_impl(Tensor dst, const Tensor& src) { std::memcpy(dst.ptr, src.ptr, src.bytes()); }
void CpuOps::to_host_impl(void* dst, const Tensor& src) { std::memcpy(dst, src.ptr, src.bytes()); }
void CpuOps::from_host_impl(Tensor dst, const void* src) { std::memcpy(dst.ptr, src, dst.bytes()); }

void CpuOps::set_threads(int n) {
  if (n <= 0) return;  // keep OpenMP's default (OMP_NUM_THREADS, else every core)
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

void CpuOps::fill_impl(Tensor x, double value) {
  if (x.dtype == DType::i32) {
    int32_t* p = x.data<int32_t>();
    for (int64_t i = 0; i < x.numel(); ++i) p[i] = static_cast<int32_t>(value);
    return;
  }
  SY_FLOAT_DISPATCH(x.dtype, fill_values(x.data<T>(), x.numel(), static_cast<T>(value)));
}

void CpuOps::add_impl(Tensor y, const Tensor& x) {
  SY_FLOAT_DISPATCH(x.dtype, add_values(y.data<T>(), x.data<T>(), x.numel()));
}

void CpuOps::scale_impl(Tensor x, double s) {
  SY_FLOAT_DISPATCH(x.dtype, scale_values(x.data<T>(), x.numel(), static_cast<T>(s)));
}

// Reductions use fixed-size chunks summed in chunk order, so the result does not
// depend on the number of threads.
template <class T, class F>
static double chunked_sum(const T* p, int64_t n, F f) {
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  double total = 0;
#pragma omp parallel for schedule(static) ordered
  for (int64_t c = 0; c < chunks; ++c) {
    double s = 0;
    const int64_t end = (c + 1) * kChunk < n ? (c + 1) * kChunk : n;
    for (int64_t i = c * kChunk; i < end; ++i) s += f(static_cast<double>(p[i]));
#pragma omp ordered
    total += s;
  }
  return total;
}

double CpuOps::sum_impl(const Tensor& x, bool squares) {
  double r = 0;
  const auto f = [squares](double v) { return squares ? v * v : v; };
  SY_FLOAT_DISPATCH(x.dtype, r = chunked_sum(x.data<T>(), x.numel(), f));
  return r;
}

}  // namespace sy
