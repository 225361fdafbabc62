// Matrix products on the CPU: OpenBLAS (its OpenMP build), one call per product.
#include <omp.h>

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "core/bf16.h"

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_ops_impl.h"

namespace sy::cpu {

// BLAS wants every leading dimension ≥ 1 even when a matrix is empty (K = 0);
// OpenBLAS refuses the call otherwise and leaves C untouched.
static int64_t ld(int64_t v) { return std::max<int64_t>(v, 1); }

template <>
void gemm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 const float* B, float beta, float* C) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
              N, K, alpha, A, ld(ta ? M : K), B, ld(tb ? K : N), beta, C, ld(N));
}

template <>
void gemm<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                  const double* A, const double* B, double beta, double* C) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
              N, K, alpha, A, ld(ta ? M : K), B, ld(tb ? K : N), beta, C, ld(N));
}

}  // namespace sy::cpu

namespace sy {
namespace {

template <class T>
void batched_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* a,
                  int64_t sa, const T* b, int64_t sb, T beta, T* c, int64_t sc, int64_t batch,
                  bool parallel) {
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < batch; ++i)
    cpu::gemm<T>(ta, tb, M, N, K, alpha, a + i * sa, b + i * sb, beta, c + i * sc);
}

// Each member's [rows · cols] operand, rounded to bf16, packed at stride rows · cols
// (one copy when the members share it, stride 0). Returns the new stride.
int64_t round_operand(const float* src, int64_t stride, int64_t n, int64_t batch, std::vector<float>& dst) {
  const int64_t copies = stride == 0 ? 1 : batch;
  if (dst.size() < static_cast<size_t>(copies * n)) dst.resize(static_cast<size_t>(copies * n));
  float* out = dst.data();
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t i = 0; i < copies; ++i)
    for (int64_t j = 0; j < n; ++j) out[i * n + j] = round_to_bf16(src[i * stride + j]);
  return stride == 0 ? 0 : n;
}

}  // namespace

void CpuOps::gemm_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                       const Tensor& A, int64_t sa, const Tensor& B, int64_t sb, double beta,
                       Tensor C, int64_t sc, int64_t batch) {
  // Many small products: one thread each (OpenBLAS runs single-threaded inside an
  // OpenMP parallel region); few large ones: let each use every thread.
  const bool parallel_over_batch = batch > 1 && batch >= omp_get_max_threads();
  if (bf16_operands() && A.dtype == DType::f32) {
    // bf16 × bf16 products are exact in fp32, so sgemm on the rounded operands is a
    // bf16-operand, fp32-accumulate product (up to the order of its sums).
    // The copies are backend memory too (bench's peak, bytes_in_use()).
    const auto counted = [this](std::vector<float>& v, const void* before) {
      if (v.data() == before) return;
      if (before) note_freed(const_cast<void*>(before));
      note_allocated(v.data(), v.capacity() * sizeof(float));
    };
    const void* was_a = bf16_a_.data();
    const void* was_b = bf16_b_.data();
    const int64_t ra = round_operand(A.data<float>(), sa, M * K, batch, bf16_a_);
    const int64_t rb = round_operand(B.data<float>(), sb, K * N, batch, bf16_b_);
    counted(bf16_a_, was_a);
    counted(bf16_b_, was_b);
    batched_gemm<float>(ta, tb, M, N, K, static_cast<float>(alpha), bf16_a_.data(), ra, bf16_b_.data(), rb,
                        static_cast<float>(beta), C.data<float>(), sc, batch, parallel_over_batch);
    return;
  }
  SY_FLOAT_DISPATCH(A.dtype, batched_gemm<T>(ta, tb, M, N, K, static_cast<T>(alpha), A.data<T>(),
                                              sa, B.data<T>(), sb, static_cast<T>(beta),
                                              C.data<T>(), sc, batch, parallel_over_batch));
}

}  // namespace sy
