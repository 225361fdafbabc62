// The CUDA backend: device choice, memory, cuBLAS matrix products, elementwise
// helpers, deterministic reductions and the Adam(W) step. The layer kernels live
// beside this file, one per layer (cuda_norm.cu, cuda_attention.cu, ...).
#include <cstdlib>
#include <string>

#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/cuda_ops_impl.h"
#include "core/log.h"

namespace sy {
namespace {

constexpr int kReduceBlocks = 512;  // fixed grid: reduce() sums in the same order every call

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

// One GPU per rank: the local rank under Open MPI (or SLURM), modulo the GPUs seen.
int pick_device(int count) {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK"})
    if (const char* v = std::getenv(var)) return std::atoi(v) % count;
  return 0;
}

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

std::unique_ptr<Ops> make_cuda_ops() {
  const int count = cuda_device_count();
  if (count == 0)
    throw Error(ExitCode::bad_input,
                "backend 'cuda' was asked for, but no CUDA device is visible "
                "(check nvidia-smi and CUDA_VISIBLE_DEVICES), or set backend: cpu");
  return std::make_unique<CudaOps>(pick_device(count));
}

CudaOps::CudaOps(int device) : device_(device) {
  SY_CUDA(cudaSetDevice(device_));
  SY_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  SY_CUBLAS(cublasCreate(&cublas_));
  SY_CUBLAS(cublasSetStream(cublas_, stream_));
  // fp32 parity mode: no TF32 tensor-core shortcuts, fixed algorithms.
  SY_CUBLAS(cublasSetMathMode(cublas_, CUBLAS_PEDANTIC_MATH));
  SY_CUDA(cudaMalloc(&partials_, kReduceBlocks * sizeof(double)));
  host_partials_.resize(kReduceBlocks);
}

CudaOps::~CudaOps() {
  cudaStreamSynchronize(stream_);
  if (scratch_) cudaFree(scratch_);
  cudaFree(partials_);
  cublasDestroy(cublas_);
  cudaStreamDestroy(stream_);
}

std::string CudaOps::name() const {
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, device_);
  return fmt::format("cuda (device {}: {}, sm_{}{}, {:.0f} GiB)", device_, prop.name, prop.major,
                     prop.minor, static_cast<double>(prop.totalGlobalMem) / (1 << 30));
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
  return p;
}

void CudaOps::deallocate(void* p) {
  cudaStreamSynchronize(stream_);
  cudaFree(p);
}

void* CudaOps::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    SY_CUDA(cudaStreamSynchronize(stream_));
    if (scratch_) SY_CUDA(cudaFree(scratch_));
    SY_CUDA(cudaMalloc(&scratch_, bytes));
    scratch_bytes_ = bytes;
  }
  return scratch_;
}

const std::vector<int32_t>& CudaOps::indices_to_host(const Tensor& t) {
  SY_CHECK(t.dtype == DType::i32, "index tensor is {}, expected i32", dtype_name(t.dtype));
  host_indices_.resize(static_cast<size_t>(t.numel()));
  to_host(host_indices_.data(), t);
  return host_indices_;
}

void CudaOps::synchronize() { SY_CUDA(cudaStreamSynchronize(stream_)); }

void CudaOps::copy(Tensor dst, const Tensor& src) {
  SY_CHECK(dst.dtype == src.dtype, "copy: dst is {}, src {}", dtype_name(dst.dtype),
           dtype_name(src.dtype));
  check_numel(dst, src.numel(), "copy dst");
  if (dst.ptr != src.ptr)
    SY_CUDA(cudaMemcpyAsync(dst.ptr, src.ptr, src.bytes(), cudaMemcpyDeviceToDevice, stream_));
}

void CudaOps::to_host(void* dst, const Tensor& src) {
  SY_CUDA(cudaMemcpyAsync(dst, src.ptr, src.bytes(), cudaMemcpyDeviceToHost, stream_));
  SY_CUDA(cudaStreamSynchronize(stream_));
}

void CudaOps::from_host(Tensor dst, const void* src) {
  SY_CUDA(cudaMemcpyAsync(dst.ptr, src, dst.bytes(), cudaMemcpyHostToDevice, stream_));
  SY_CUDA(cudaStreamSynchronize(stream_));  // the caller may reuse `src` at once
}

void CudaOps::fill(Tensor x, double value) {
  const int64_t n = x.numel();
  if (n == 0) return;
  if (x.dtype == DType::i32)
    fill_i32<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(x.data<int32_t>(), n,
                                                                 static_cast<int32_t>(value));
  else {
    cuda_check_f32(x, "fill x");
    fill_f32<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(x.data<float>(), n,
                                                                 static_cast<float>(value));
  }
  SY_CUDA_LAUNCHED();
}

// Row-major C[M,N] = op(A)·op(B) is column-major Cᵀ[N,M] = op(B)ᵀ·op(A)ᵀ: cuBLAS gets
// B first, A second, and the dims swapped; leading dims are the row-major widths.
void CudaOps::gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                   const Tensor& A, const Tensor& B, double beta, Tensor C) {
  check_numel(A, M * K, "gemm A");
  check_numel(B, K * N, "gemm B");
  check_numel(C, M * N, "gemm C");
  gemm_strided_batched(ta, tb, M, N, K, alpha, A, 0, B, 0, beta, C, 0, 1);
}

void CudaOps::gemm_strided_batched(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                   double alpha, const Tensor& A, int64_t sa, const Tensor& B,
                                   int64_t sb, double beta, Tensor C, int64_t sc,
                                   int64_t batch) {
  SY_CHECK(batch >= 1, "batch {}", batch);
  SY_CHECK(A.numel() >= (batch - 1) * sa + M * K, "gemm_strided_batched A too small");
  SY_CHECK(B.numel() >= (batch - 1) * sb + K * N, "gemm_strided_batched B too small");
  SY_CHECK(C.numel() >= (batch - 1) * sc + M * N, "gemm_strided_batched C too small");
  cuda_check_f32(A, "gemm A");
  cuda_check_f32(B, "gemm B");
  cuda_check_f32(C, "gemm C");
  if (M == 0 || N == 0) return;
  const float a = static_cast<float>(alpha), b = static_cast<float>(beta);
  const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int ld_b = static_cast<int>(tb ? K : N), ld_a = static_cast<int>(ta ? M : K);
  if (K == 0) {  // cuBLAS wants k ≥ 1: C = β·C
    for (int64_t i = 0; i < batch; ++i) scale(C.view({M * N}, i * sc), beta);
    return;
  }
  SY_CUBLAS(cublasSgemmStridedBatched(cublas_, op_b, op_a, static_cast<int>(N),
                                      static_cast<int>(M), static_cast<int>(K), &a,
                                      B.data<float>(), ld_b, sb, A.data<float>(), ld_a, sa, &b,
                                      C.data<float>(), static_cast<int>(N), sc,
                                      static_cast<int>(batch)));
}

void CudaOps::add(Tensor y, const Tensor& x) {
  check_numel(y, x.numel(), "add y");
  cuda_check_f32(x, "add x");
  const int64_t n = x.numel();
  if (n == 0) return;
  add_f32<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(y.data<float>(), x.data<float>(), n);
  SY_CUDA_LAUNCHED();
}

void CudaOps::scale(Tensor x, double s) {
  cuda_check_f32(x, "scale x");
  const int64_t n = x.numel();
  if (n == 0) return;
  scale_f32<<<cuda::blocks_for(n), cuda::kBlock, 0, stream_>>>(x.data<float>(), n,
                                                                static_cast<float>(s));
  SY_CUDA_LAUNCHED();
}

// Fixed grid, fixed tree per block, blocks summed on the host in block order: the
// result depends on n only, never on timing.
double CudaOps::reduce(const Tensor& x, bool squares) {
  cuda_check_f32(x, "sum x");
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

double CudaOps::sum_squares(const Tensor& x) { return reduce(x, true); }
double CudaOps::sum(const Tensor& x) { return reduce(x, false); }

void CudaOps::adam_update(Tensor param, const Tensor& grad, Tensor m, Tensor v,
                          const AdamArgs& a) {
  const int64_t n = param.numel();
  check_numel(grad, n, "adam grad");
  check_numel(m, n, "adam m");
  check_numel(v, n, "adam v");
  cuda_check_f32(param, "adam param");
  if (n == 0) return;
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
