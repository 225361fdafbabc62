// The CUDA backend: device choice, memory, cuBLAS matrix products, elementwise
// helpers, deterministic reductions and the Adam(W) step. The layer kernels live
// beside this file, one per layer (cuda_norm.cu, cuda_attention.cu, ...).
#include <cuda_bf16.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/cuda_ops_impl.h"
#include "core/log.h"
#include "core/process.h"

namespace sy {
namespace {

constexpr int kReduceBlocks = 512;  // fixed grid: sum_impl() sums in the same order every call

__global__ void fill_f32(float* p, int64_t n, float v) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) p[i] = v;
}
__global__ void fill_i32(int32_t* p, int64_t n, int32_t v) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) p[i] = v;
}
__global__ void add_f32(float* y, const float* x, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] += x[i];
}
__global__ void scale_f32(float* x, int64_t n, float s) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] *= s;
}

// dst = src rounded to bf16 (nearest, ties to even: core/bf16.h's round_to_bf16).
__global__ void round_bf16(__nv_bfloat16* dst, const float* src, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = __float2bfloat16_rn(src[i]);
}

// partials[block] = Σ over a grid-strided slice of x (or of x²), in double.
__global__ void reduce_f32(double* partials, const float* x, int64_t n, bool squares) {
  __shared__ double shared[32];
  double s = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double v = x[i];
    s += squares ? v * v : v;
  }
  s = cuda::block_sum(s, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// The CPU's adam_update formula, element by element (fp32, like the CPU's f32 path).
__global__ void adam_f32(float* p, const float* g, float* m, float* v, int64_t n, float b1,
                         float b2, float c1, float c2, float lr, float eps, float wd, float gs,
                         bool decoupled) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  float gi = g[i] * gs;
  if (!decoupled) gi += wd * p[i];
  const float mi = b1 * m[i] + (1.0f - b1) * gi;
  const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  float upd = (mi * c1) / (sqrtf(vi * c2) + eps);
  if (decoupled) upd += wd * p[i];
  p[i] -= lr * upd;
}

// Whether this machine has an NVIDIA driver at all: its library or its device nodes.
bool nvidia_driver_installed() {
  if (void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL)) {
    dlclose(h);
    return true;
  }
  return access("/dev/nvidiactl", F_OK) == 0 || access("/proc/driver/nvidia/version", F_OK) == 0;
}

}  // namespace

CudaProbe::State classify_cuda_start(int cuda_error, bool driver_installed) {
  if (cuda_error == cudaSuccess) return CudaProbe::State::ok;
  if (cuda_error == cudaErrorNoDevice) return CudaProbe::State::no_gpu;
  // Without any driver, the runtime says "driver version is insufficient": on a
  // machine with no NVIDIA driver at all that only means "no GPU here".
  if (cuda_error == cudaErrorInsufficientDriver && !driver_installed)
    return CudaProbe::State::no_gpu;
  return CudaProbe::State::error;
}

CudaProbe probe_cuda() {
  CudaProbe p;
  const cudaError_t err = cudaGetDeviceCount(&p.devices);
  const bool driver = nvidia_driver_installed();
  p.state = classify_cuda_start(err, driver);
  if (p.state == CudaProbe::State::ok && p.devices == 0) p.state = CudaProbe::State::no_gpu;
  if (p.state != CudaProbe::State::ok) {
    p.devices = 0;
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    p.message = fmt::format("{} ({}; NVIDIA driver {}; CUDA_VISIBLE_DEVICES {})",
                            cudaGetErrorString(err), cudaGetErrorName(err),
                            driver ? "installed" : "not installed",
                            visible ? fmt::format("'{}'", visible) : std::string("unset"));
  }
  return p;
}

int cuda_device_count() {
  const CudaProbe p = probe_cuda();
  if (p.state == CudaProbe::State::error)
    throw Error(ExitCode::bad_input,
                "CUDA could not start: " + p.message +
                    ". The GPU is there but unusable: check `nvidia-smi`, that the driver is at "
                    "least as new as the CUDA runtime, and CUDA_VISIBLE_DEVICES");
  return p.devices;
}

std::unique_ptr<Ops> make_cuda_ops() {
  const CudaProbe p = probe_cuda();
  if (p.state == CudaProbe::State::error) cuda_device_count();  // throws, naming the error
  if (p.devices == 0)
    throw Error(ExitCode::bad_input,
                "backend 'cuda' was asked for, but no CUDA device is visible: " + p.message +
                    "; check nvidia-smi and CUDA_VISIBLE_DEVICES, or set backend: cpu");
  return std::make_unique<CudaOps>(local_rank() % p.devices);
}

CudaOps::CudaOps(int device) : device_(device) {
  SY_CUDA(cudaSetDevice(device_));
  SY_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  SY_CUBLAS(cublasCreate(&cublas_));
  SY_CUBLAS(cublasSetStream(cublas_, stream_));
  set_compute_stream(stream_);  // NCCL orders its collectives after this stream's work
  // fp32 parity mode: no TF32 tensor-core shortcuts, fixed algorithms.
  SY_CUBLAS(cublasSetMathMode(cublas_, CUBLAS_PEDANTIC_MATH));
  SY_CUDA(cudaMalloc(&partials_, kReduceBlocks * sizeof(double)));
  host_partials_.resize(kReduceBlocks);
}

// Teardown is checked too: an error here is a fault of an earlier asynchronous
// kernel that nothing waited for, and must not pass silently.
CudaOps::~CudaOps() {
  if (compute_stream() == stream_) set_compute_stream(nullptr);
  SY_CUDA(cudaStreamSynchronize(stream_));
  if (scratch_) SY_CUDA(cudaFree(scratch_));
  if (operand_scratch_) SY_CUDA(cudaFree(operand_scratch_));
  SY_CUDA(cudaFree(partials_));
  SY_CUBLAS(cublasDestroy(cublas_));
  SY_CUDA(cudaStreamDestroy(stream_));
}

std::string CudaOps::name() const {
  cudaDeviceProp prop{};
  SY_CUDA(cudaGetDeviceProperties(&prop, device_));
  int driver = 0, runtime = 0;
  SY_CUDA(cudaDriverGetVersion(&driver));
  SY_CUDA(cudaRuntimeGetVersion(&runtime));
  return fmt::format("cuda (device {}: {}, sm_{}{}, {:.0f} GiB; driver CUDA {}.{}, runtime {}.{})",
                     device_, prop.name, prop.major, prop.minor,
                     static_cast<double>(prop.totalGlobalMem) / (1 << 30), driver / 1000,
                     driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
}

uint64_t CudaOps::memory_capacity() const {
  cudaDeviceProp prop{};
  SY_CUDA(cudaGetDeviceProperties(&prop, device_));
  return prop.totalGlobalMem;
}

void* CudaOps::allocate(size_t bytes) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes == 0 ? 64 : bytes);
  if (err != cudaSuccess)
    fatalf(ExitCode::internal,
           "out of GPU memory allocating {} bytes on device {} ({}); lower train.batch_size or "
           "model size",
           bytes, device_, cudaGetErrorString(err));
  SY_CUDA(cudaMemsetAsync(p, 0, bytes, stream_));
  note_allocated(p, bytes == 0 ? 64 : bytes);
  return p;
}

void CudaOps::deallocate(void* p) {
  SY_CUDA(cudaStreamSynchronize(stream_));
  note_freed(p);
  SY_CUDA(cudaFree(p));
}

// A kept device buffer grown to at least `bytes` (never shrunk; the stream drained
// before the old one goes).
void* CudaOps::grown(void*& buffer, size_t& have, size_t bytes) {
  if (bytes > have) {
    SY_CUDA(cudaStreamSynchronize(stream_));
    if (buffer) {
      note_freed(buffer);
      SY_CUDA(cudaFree(buffer));
    }
    SY_CUDA(cudaMalloc(&buffer, bytes));
    note_allocated(buffer, bytes);
    have = bytes;
  }
  return buffer;
}

void* CudaOps::scratch(size_t bytes) { return grown(scratch_, scratch_bytes_, bytes); }
void* CudaOps::operand_scratch(size_t bytes) { return grown(operand_scratch_, operand_scratch_bytes_, bytes); }

const std::vector<int32_t>& CudaOps::indices_to_host(const Tensor& t) {
  host_indices_.resize(static_cast<size_t>(t.numel()));
  to_host(host_indices_.data(), t);
  return host_indices_;
}

Tensor CudaOps::host_view(const Tensor& device_indices) const {
  Tensor h = device_indices;
  h.ptr = const_cast<int32_t*>(host_indices_.data());
  h.device = Device::cpu;
  return h;
}

void CudaOps::synchronize() { SY_CUDA(cudaStreamSynchronize(stream_)); }

void CudaOps::copy_impl(Tensor dst, const Tensor& src) {
  SY_CUDA(cudaMemcpyAsync(dst.ptr, src.ptr, src.bytes(), cudaMemcpyDeviceToDevice, stream_));
}

void CudaOps::to_host_impl(void* dst, const Tensor& src) {
  SY_CUDA(cudaMemcpyAsync(dst, src.ptr, src.bytes(), cudaMemcpyDeviceToHost, stream_));
  SY_CUDA(cudaStreamSynchronize(stream_));
}

void CudaOps::from_host_impl(Tensor dst, const void* src) {
  SY_CUDA(cudaMemcpyAsync(dst.ptr, src, dst.bytes(), cudaMemcpyHostToDevice, stream_));
  SY_CUDA(cudaStreamSynchronize(stream_));  // the caller may reuse `src` at once
}

void CudaOps::fill_impl(Tensor x, double value) {
  const int64_t n = x.numel();
  if (x.dtype == DType::i32)
    fill_i32<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(x.data<int32_t>(), n,
                                                                 static_cast<int32_t>(value));
  else
    fill_f32<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(x.data<float>(), n,
                                                                 static_cast<float>(value));
  SY_CUDA_LAUNCHED();
}

// Row-major C[M,N] = op(A)·op(B) is column-major Cᵀ[N,M] = op(B)ᵀ·op(A)ᵀ: cuBLAS gets
// B first, A second, and the dims swapped; leading dims are the row-major widths
// (at least 1, as cuBLAS requires). K ≥ 1 here: the front handles K = 0.
void CudaOps::gemm_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                        const Tensor& A, int64_t sa, const Tensor& B, int64_t sb, double beta,
                        Tensor C, int64_t sc, int64_t batch) {
  const float a = static_cast<float>(alpha), b = static_cast<float>(beta);
  if (bf16_operands()) return gemm_bf16(ta, tb, M, N, K, a, A, sa, B, sb, b, C, sc, batch);
  const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const auto ld = [](int64_t v) { return static_cast<int>(v < 1 ? 1 : v); };
  SY_CUBLAS(cublasSgemmStridedBatched(cublas_, op_b, op_a, static_cast<int>(N),
                                      static_cast<int>(M), static_cast<int>(K), &a,
                                      B.data<float>(), ld(tb ? K : N), sb, A.data<float>(),
                                      ld(ta ? M : K), sa, &b, C.data<float>(), ld(N), sc,
                                      static_cast<int>(batch)));
}

// bf16 operands: A's and B's elements that the batch reads (the last member ends
// (batch−1)·stride + rows·cols in) rounded into one scratch buffer, then the same
// row-major-as-column-major call as gemm_impl on tensor cores, accumulating in fp32
// (CUBLAS_COMPUTE_32F with an fp32 C: every sum stays fp32, as the CPU's bf16
// reference keeps it). The handle leaves pedantic math for the call, so that no
// setting of it can keep cuBLAS off its tensor-core kernels.
void CudaOps::gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                        const Tensor& A, int64_t sa, const Tensor& B, int64_t sb, float beta,
                        Tensor C, int64_t sc, int64_t batch) {
  const int64_t na = (batch - 1) * sa + M * K, nb = (batch - 1) * sb + K * N;
  const int64_t nb_at = (na + 127) / 128 * 128;  // B's copy starts 256-byte aligned
  auto* ops = static_cast<__nv_bfloat16*>(
      operand_scratch(static_cast<size_t>(nb_at + nb) * sizeof(__nv_bfloat16)));
  round_bf16<<<cuda::blocks_for(na), cuda::kBlock, 0, stream_>>>(ops, A.data<float>(), na);
  SY_CUDA_LAUNCHED();
  round_bf16<<<cuda::blocks_for(nb), cuda::kBlock, 0, stream_>>>(ops + nb_at, B.data<float>(), nb);
  SY_CUDA_LAUNCHED();
  const auto ld = [](int64_t v) { return static_cast<int>(v < 1 ? 1 : v); };
  SY_CUBLAS(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
  const cublasStatus_t st = cublasGemmStridedBatchedEx(
      cublas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(N),
      static_cast<int>(M), static_cast<int>(K), &alpha, ops + nb_at, CUDA_R_16BF, ld(tb ? K : N), sb,
      ops, CUDA_R_16BF, ld(ta ? M : K), sa, &beta, C.data<float>(), CUDA_R_32F, ld(N), sc,
      static_cast<int>(batch), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  SY_CUBLAS(cublasSetMathMode(cublas_, CUBLAS_PEDANTIC_MATH));
  SY_CUBLAS(st);
}

void CudaOps::add_impl(Tensor y, const Tensor& x) {
  const int64_t n = x.numel();
  add_f32<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(y.data<float>(), x.data<float>(), n);
  SY_CUDA_LAUNCHED();
}

void CudaOps::scale_impl(Tensor x, double s) {
  const int64_t n = x.numel();
  scale_f32<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(x.data<float>(), n,
                                                                static_cast<float>(s));
  SY_CUDA_LAUNCHED();
}

// Fixed grid, fixed tree per block, blocks summed on the host in block order: the
// result depends on n only, never on timing.
double CudaOps::sum_impl(const Tensor& x, bool squares) {
  reduce_f32<<<kReduceBlocks, cuda::kBlock, 0, stream_>>>(partials_, x.data<float>(), x.numel(),
                                                           squares);
  SY_CUDA_LAUNCHED();
  SY_CUDA(cudaMemcpyAsync(host_partials_.data(), partials_, kReduceBlocks * sizeof(double),
                          cudaMemcpyDeviceToHost, stream_));
  SY_CUDA(cudaStreamSynchronize(stream_));
  double total = 0;
  for (double p : host_partials_) total += p;
  return total;
}

void CudaOps::adam_update_impl(Tensor param, const Tensor& grad, Tensor m, Tensor v,
                               const AdamArgs& a) {
  const int64_t n = param.numel();
  const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(a.beta1, static_cast<double>(a.step))));
  const float c2 = static_cast<float>(1.0 / (1.0 - std::pow(a.beta2, static_cast<double>(a.step))));
  adam_f32<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(
      param.data<float>(), grad.data<float>(), m.data<float>(), v.data<float>(), n,
      static_cast<float>(a.beta1), static_cast<float>(a.beta2), c1, c2, static_cast<float>(a.lr),
      static_cast<float>(a.eps), static_cast<float>(a.weight_decay),
      static_cast<float>(a.grad_scale), a.decoupled);
  SY_CUDA_LAUNCHED();
}

}  // namespace sy
