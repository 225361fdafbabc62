#pragma once
// The CudaOps class (private to the CUDA backend) and the helpers its kernels
// share. Arguments arrive checked by the op front (ops.cpp). fp32 storage
// throughout; matrix products go through cuBLAS with pedantic fp32 math (no TF32),
// so results match the CPU backend to rounding, or, with bf16 operands, on tensor
// cores from operands rounded as the CPU's bf16 mode rounds them. Every reduction has a fixed order (one block per row, a
// fixed-shape tree inside the block, fixed grids for whole-tensor sums), so a step
// is deterministic run to run.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <vector>

#include "backend/op_checks.h"
#include "backend/ops.h"
#include "core/errors.h"

namespace sy {

// Every CUDA runtime call is checked; a failure names the call and where it was.
#define SY_CUDA(call)                                                                      \
  do {                                                                                     \
    const cudaError_t sy_err_ = (call);                                                    \
    if (sy_err_ != cudaSuccess)                                                            \
      fatalf(ExitCode::internal, "CUDA error '{}' in {} at {}:{}", cudaGetErrorString(sy_err_), \
             #call, __FILE__, __LINE__);                                                   \
  } while (0)

#define SY_CUBLAS(call)                                                                    \
  do {                                                                                     \
    const cublasStatus_t sy_st_ = (call);                                                  \
    if (sy_st_ != CUBLAS_STATUS_SUCCESS)                                                   \
      fatalf(ExitCode::internal, "cuBLAS error '{}' in {} at {}:{}", cublasGetStatusString(sy_st_), \
             #call, __FILE__, __LINE__);                                                   \
  } while (0)

// After every launch: a bad configuration shows here, not several ops later.
#define SY_CUDA_LAUNCHED() SY_CUDA(cudaGetLastError())

namespace cuda {

constexpr int kBlock = 256;  // threads per block of every row-reduction kernel

inline unsigned blocks_for(int64_t n, int per_block = kBlock) {
  return static_cast<unsigned>((n + per_block - 1) / per_block);
}

// A product's operand as the bf16 mode rounds it (nearest, ties to even: the CPU's
// round_to_bf16), or x itself in fp32 mode.
__device__ inline float operand(float x, bool bf16) {
  return bf16 ? __bfloat162float(__float2bfloat16_rn(x)) : x;
}

// Block-wide reductions with a fixed order (warp shuffles, then warp 0 over the
// warp results): the same inputs give the same bits on every launch.
template <class T>
__device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class T>
__device__ inline T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// All threads of the block get the result. `shared` holds ≥ 32 values.
template <class T>
__device__ inline T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous reduction
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : T(0);
  return warp_sum(v);
}
template <class T>
__device__ inline T block_max(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : T(-INFINITY);
  return warp_max(v);
}

// One block, one row: out[0..n) = softmax(x[0..n)), out[n..cols) = 0 (a causal
// mask when n < cols). out may alias x: each thread reads and writes its own columns.
__device__ inline void block_row_softmax(float* out, const float* x, int64_t n, int64_t cols,
                                         float* shared) {
  float mx = -INFINITY;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) mx = fmaxf(mx, x[c]);
  mx = block_max(mx, shared);
  float s = 0;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) s += (out[c] = expf(x[c] - mx));
  const float inv = 1.0f / block_sum(s, shared);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[c] = c < n ? out[c] * inv : 0.0f;
}

// One block, one row: dx = y ⊙ (dy − Σ y·dy). dx may alias dy.
__device__ inline void block_row_softmax_backward(float* dx, const float* dy, const float* y,
                                                  int64_t cols, float* shared) {
  float dot = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dot += dy[c] * y[c];
  dot = block_sum(dot, shared);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dx[c] = y[c] * (dy[c] - dot);
}

// Activation value and derivative: the same formulas as the CPU's cpu_math.h
// (GELU in its tanh form), with the device's own expf / tanhf.
template <Activation A>
__device__ inline void act_value_grad(float x, float& f, float& df) {
  if constexpr (A == Activation::gelu) {
    const float k = 0.7978845608028654f, c = 0.044715f;
    const float th = tanhf(k * (x + c * x * x * x));
    f = 0.5f * x * (1.0f + th);
    df = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * k * (1.0f + 3.0f * c * x * x);
  } else if constexpr (A == Activation::silu) {
    const float s = 1.0f / (1.0f + expf(-x));
    f = x * s;
    df = s * (1.0f + x * (1.0f - s));
  } else {
    f = x > 0.0f ? x : 0.0f;
    df = x > 0.0f ? 1.0f : 0.0f;
  }
}

}  // namespace cuda

class CudaOps final : public Ops {
 public:
  explicit CudaOps(int device);
  ~CudaOps() override;
  std::string name() const override;
  Device device() const override { return Device::cuda; }
  // fp32 only (and i32 indices): f64 gradient checks are the CPU backend's job.
  bool computes_in(DType t) const override { return t == DType::f32; }
  // bf16 operands: gemm rounds A and B to bf16 copies and multiplies them on tensor
  // cores with fp32 accumulation (cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F).
  bool supports_bf16_operands() const override { return true; }
  void* allocate(size_t bytes) override;
  void deallocate(void* p) override;
  void synchronize() override;
  uint64_t memory_capacity() const override;

 protected:
  void copy_impl(Tensor dst, const Tensor& src) override;
  void to_host_impl(void* dst, const Tensor& src) override;
  void from_host_impl(Tensor dst, const void* src) override;
  void fill_impl(Tensor x, double value) override;
  void gemm_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                 const Tensor& A, int64_t sa, const Tensor& B, int64_t sb, double beta, Tensor C,
                 int64_t sc, int64_t batch) override;
  void embedding_forward_impl(Tensor out, const Tensor& ids, const Tensor& wte,
                              const Tensor& wpe) override;
  void embedding_backward_impl(Tensor dwte, Tensor dwpe, const Tensor& dout,
                               const Tensor& ids) override;
  void norm_forward_impl(NormKind kind, Tensor out, Tensor mean, Tensor rstd, const Tensor& x,
                         const Tensor& w, const Tensor& b, double eps) override;
  void norm_backward_impl(NormKind kind, Tensor dx, Tensor dw, Tensor db, const Tensor& dout,
                          const Tensor& x, const Tensor& w, const Tensor& mean,
                          const Tensor& rstd) override;
  void activation_forward_impl(Activation act, Tensor out, const Tensor& x) override;
  void activation_backward_impl(Activation act, Tensor dx, const Tensor& dout,
                                const Tensor& x) override;
  void glu_forward_impl(Activation act, Tensor h, const Tensor& ag) override;
  void glu_backward_impl(Activation act, Tensor dag, const Tensor& dh, const Tensor& ag) override;
  void softmax_forward_impl(Tensor out, const Tensor& x) override;
  void softmax_backward_impl(Tensor dx, const Tensor& dout, const Tensor& out) override;
  void attention_forward_impl(Tensor out, AttentionCache& cache, const Tensor& qkv,
                              int64_t n_heads, bool causal) override;
  void attention_decode_impl(Tensor out, const Tensor& qkv, Tensor k_cache, Tensor v_cache, Tensor scores,
                             int64_t position, int64_t n_heads) override;
  void attention_backward_impl(Tensor dqkv, AttentionCache& cache, const Tensor& dout,
                               int64_t n_heads, bool causal) override;
  void attention_fused_forward_impl(Tensor out, Tensor lse, const Tensor& qkv, int64_t n_heads,
                                    bool causal) override;
  void attention_fused_backward_impl(Tensor dqkv, Tensor delta, const Tensor& dout,
                                     const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                     int64_t n_heads, bool causal) override;
  void cross_entropy_forward_impl(Tensor loss, Tensor nll, Tensor lse, const Tensor& logits,
                                  const Tensor& targets, double smoothing) override;
  void cross_entropy_backward_impl(Tensor dlogits, const Tensor& logits, const Tensor& lse,
                                   const Tensor& targets, double smoothing,
                                   double scale) override;
  void gather_rows_impl(Tensor out, const Tensor& x, const Tensor& rows,
                        const Tensor& w) override;
  void combine_rows_impl(Tensor out, const Tensor& y, const Tensor& begin, const Tensor& slots,
                         const Tensor& w) override;
  void row_dots_impl(Tensor out, const Tensor& a, const Tensor& b, const Tensor& rows) override;
  bool routes_on_backend() const override;
  void jitter_rows_impl(Tensor out, const Tensor& in, const JitterSpec& spec) override;
  void route_plan_impl(const RoutePlanTensors& plan, const RouteState& state, const RouteInputs& in,
                       const RouteSpec& spec) override;
  void route_backward_impl(Tensor dlogits, Tensor dnoise_logits, const Tensor& dgate,
                           const RoutePlanTensors& plan, const RouteState& state,
                           const RouteInputs& in, const RouteSpec& spec, double aux_scale,
                           double z_scale) override;
  void add_impl(Tensor y, const Tensor& x) override;
  void scale_impl(Tensor x, double s) override;
  double sum_impl(const Tensor& x, bool squares) override;
  void adam_update_impl(Tensor param, const Tensor& grad, Tensor m, Tensor v,
                        const AdamArgs& a) override;

 private:
  // Device scratch of at least `bytes`, kept and reused (grows only on the first
  // steps, when shapes are first seen; never per step after that).
  void* scratch(size_t bytes);
  // The same for the bf16 operand copies of gemm (apart: a gemm may run while an
  // op's scratch is in use).
  void* operand_scratch(size_t bytes);
  void* grown(void*& buffer, size_t& have, size_t bytes);
  void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const Tensor& A,
                 int64_t sa, const Tensor& B, int64_t sb, float beta, Tensor C, int64_t sc,
                 int64_t batch);
  // Host copy of an i32 index tensor (for range checks and host-built index lists),
  // and a host Tensor view of it for the shared value checks of op_checks.h.
  const std::vector<int32_t>& indices_to_host(const Tensor& t);
  Tensor host_view(const Tensor& device_indices) const;

  int device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  void* operand_scratch_ = nullptr;
  size_t operand_scratch_bytes_ = 0;
  double* partials_ = nullptr;  // [kReduceBlocks] per-block sums of sum_impl()
  std::vector<int32_t> host_indices_;
  std::vector<int32_t> host_csr_;
  std::vector<double> host_partials_;
};

}  // namespace sy
