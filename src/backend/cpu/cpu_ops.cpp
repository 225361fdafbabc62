#include <omp.h>

#include <cblas.h>

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

template <class T>
void batched_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* a,
                  int64_t sa, const T* b, int64_t sb, T beta, T* c, int64_t sc, int64_t batch,
                  bool parallel) {
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < batch; ++i)
    cpu::gemm<T>(ta, tb, M, N, K, alpha, a + i * sa, b + i * sb, beta, c + i * sc);
}

}  // namespace

std::unique_ptr<Ops> make_cpu_ops() { return std::make_unique<CpuOps>(); }

CpuOps::CpuOps() = default;

std::string CpuOps::name() const {
  return fmt::format("cpu ({} OpenMP threads, OpenBLAS {})", omp_get_max_threads(),
                     openblas_get_config());
}

void* CpuOps::allocate(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fatalf(ExitCode::internal, "out of host memory allocating {} bytes", bytes);
  // Touch every page now so the training step never page-faults on first use.
  std::memset(p, 0, rounded);
  return p;
}

void CpuOps::deallocate(void* p) { std::free(p); }

void CpuOps::copy(Tensor dst, const Tensor& src) {
  check_dtype(dst, src.dtype, "copy dst");
  check_numel(dst, src.numel(), "copy dst");
  if (dst.ptr != src.ptr) std::memcpy(dst.ptr, src.ptr, src.bytes());
}

void CpuOps::to_host(void* dst, const Tensor& src) { std::memcpy(dst, src.ptr, src.bytes()); }
void CpuOps::from_host(Tensor dst, const void* src) { std::memcpy(dst.ptr, src, dst.bytes()); }

void CpuOps::set_threads(int n) {
  if (n <= 0) return;  // keep OpenMP's default (OMP_NUM_THREADS, else every core)
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

void CpuOps::fill(Tensor x, double value) {
  if (x.dtype == DType::i32) {
    int32_t* p = x.data<int32_t>();
    for (int64_t i = 0; i < x.numel(); ++i) p[i] = static_cast<int32_t>(value);
    return;
  }
  SY_FLOAT_DISPATCH(x.dtype, fill_values(x.data<T>(), x.numel(), static_cast<T>(value)));
}

void CpuOps::gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                  const Tensor& A, const Tensor& B, double beta, Tensor C) {
  check_numel(A, M * K, "gemm A");
  check_numel(B, K * N, "gemm B");
  check_numel(C, M * N, "gemm C");
  check_dtype(B, A.dtype, "gemm B");
  check_dtype(C, A.dtype, "gemm C");
  SY_FLOAT_DISPATCH(A.dtype, cpu::gemm<T>(ta, tb, M, N, K, static_cast<T>(alpha), A.data<T>(),
                                          B.data<T>(), static_cast<T>(beta), C.data<T>()));
}

void CpuOps::gemm_strided_batched(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                  double alpha, const Tensor& A, int64_t sa, const Tensor& B,
                                  int64_t sb, double beta, Tensor C, int64_t sc, int64_t batch) {
  SY_CHECK(batch >= 1, "batch {}", batch);
  SY_CHECK(A.numel() >= (batch - 1) * sa + M * K, "gemm_strided_batched A too small");
  SY_CHECK(B.numel() >= (batch - 1) * sb + K * N, "gemm_strided_batched B too small");
  SY_CHECK(C.numel() >= (batch - 1) * sc + M * N, "gemm_strided_batched C too small");
  check_dtype(B, A.dtype, "gemm B");
  check_dtype(C, A.dtype, "gemm C");
  // Many small products: one thread each (OpenBLAS runs single-threaded inside an
  // OpenMP parallel region); few large ones: let each use every thread.
  const bool parallel_over_batch = batch >= omp_get_max_threads();
  SY_FLOAT_DISPATCH(A.dtype, batched_gemm<T>(ta, tb, M, N, K, static_cast<T>(alpha), A.data<T>(), sa,
                                              B.data<T>(), sb, static_cast<T>(beta), C.data<T>(),
                                              sc, batch, parallel_over_batch));
}

void CpuOps::embedding_forward(Tensor out, const Tensor& ids, const Tensor& wte,
                               const Tensor& wpe) {
  const int64_t B = ids.dim(0), Tn = ids.dim(1), V = wte.dim(0), C = wte.dim(1);
  check_dtype(ids, DType::i32, "embedding ids");
  check_numel(out, B * Tn * C, "embedding out");
  SY_CHECK(wpe.dim(0) >= Tn && wpe.dim(1) == C, "wpe {} too small for T={}", wpe.shape_str(), Tn);
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < B * Tn; ++i)
    if (id[i] < 0 || id[i] >= V)
      fatalf(ExitCode::bad_input, "token id {} at position {} is outside the vocabulary [0, {})",
             id[i], i, V);
  SY_FLOAT_DISPATCH(out.dtype, cpu::embedding_forward<T>(out.data<T>(), id, wte.data<T>(),
                                                         wpe.data<T>(), B, Tn, C, V));
}

void CpuOps::embedding_backward(Tensor dwte, Tensor dwpe, const Tensor& dout, const Tensor& ids) {
  const int64_t B = ids.dim(0), Tn = ids.dim(1), C = dwte.dim(1);
  check_numel(dout, B * Tn * C, "embedding dout");
  SY_FLOAT_DISPATCH(dout.dtype,
                    cpu::embedding_backward<T>(dwte.data<T>(), dwpe.empty() ? nullptr : dwpe.data<T>(),
                                               dout.data<T>(), ids.data<int32_t>(), B, Tn, C));
}

void CpuOps::norm_forward(NormKind kind, Tensor out, Tensor mean, Tensor rstd, const Tensor& x,
                          const Tensor& w, const Tensor& b, double eps) {
  const int64_t C = w.numel(), N = x.numel() / C;
  check_numel(x, N * C, "norm x");
  check_numel(out, N * C, "norm out");
  check_numel(rstd, N, "norm rstd");
  if (kind == NormKind::layernorm) {
    check_numel(b, C, "layernorm bias");
    check_numel(mean, N, "layernorm mean");
  }
  SY_FLOAT_DISPATCH(x.dtype, cpu::norm_forward<T>(kind, out.data<T>(), mean.data<T>(),
                                                  rstd.data<T>(), x.data<T>(), w.data<T>(),
                                                  b.data<T>(), N, C, static_cast<T>(eps)));
}

void CpuOps::norm_backward(NormKind kind, Tensor dx, Tensor dw, Tensor db, const Tensor& dout,
                           const Tensor& x, const Tensor& w, const Tensor& mean,
                           const Tensor& rstd) {
  const int64_t C = w.numel(), N = x.numel() / C;
  check_numel(dx, N * C, "norm dx");
  check_numel(dout, N * C, "norm dout");
  check_numel(dw, C, "norm dw");
  SY_FLOAT_DISPATCH(x.dtype,
                    cpu::norm_backward<T>(kind, dx.data<T>(), dw.data<T>(), db.data<T>(),
                                          dout.data<T>(), x.data<T>(), w.data<T>(),
                                          mean.data<T>(), rstd.data<T>(), N, C));
}

void CpuOps::activation_forward(Activation act, Tensor out, const Tensor& x) {
  check_numel(out, x.numel(), "activation out");
  SY_FLOAT_DISPATCH(x.dtype,
                    cpu::activation_forward<T>(act, out.data<T>(), x.data<T>(), x.numel()));
}

void CpuOps::activation_backward(Activation act, Tensor dx, const Tensor& dout, const Tensor& x) {
  check_numel(dx, x.numel(), "activation dx");
  check_numel(dout, x.numel(), "activation dout");
  SY_FLOAT_DISPATCH(x.dtype, cpu::activation_backward<T>(act, dx.data<T>(), dout.data<T>(),
                                                         x.data<T>(), x.numel()));
}

void CpuOps::glu_forward(Activation act, Tensor h, const Tensor& ag) {
  const int64_t H = h.dim(-1), N = h.numel() / H;
  check_numel(ag, N * 2 * H, "glu ag");
  SY_FLOAT_DISPATCH(h.dtype, cpu::glu_forward<T>(act, h.data<T>(), ag.data<T>(), N, H));
}

void CpuOps::glu_backward(Activation act, Tensor dag, const Tensor& dh, const Tensor& ag) {
  const int64_t H = dh.dim(-1), N = dh.numel() / H;
  check_numel(ag, N * 2 * H, "glu ag");
  check_numel(dag, N * 2 * H, "glu dag");
  SY_FLOAT_DISPATCH(dh.dtype, cpu::glu_backward<T>(act, dag.data<T>(), dh.data<T>(),
                                                   ag.data<T>(), N, H));
}

void CpuOps::softmax_forward(Tensor out, const Tensor& x) {
  const int64_t cols = x.dim(-1), rows = x.numel() / cols;
  check_numel(out, x.numel(), "softmax out");
  SY_FLOAT_DISPATCH(x.dtype, cpu::softmax_forward<T>(out.data<T>(), x.data<T>(), rows, cols));
}

void CpuOps::softmax_backward(Tensor dx, const Tensor& dout, const Tensor& out) {
  const int64_t cols = out.dim(-1), rows = out.numel() / cols;
  check_numel(dx, out.numel(), "softmax dx");
  check_numel(dout, out.numel(), "softmax dout");
  SY_FLOAT_DISPATCH(out.dtype, cpu::softmax_backward<T>(dx.data<T>(), dout.data<T>(),
                                                        out.data<T>(), rows, cols));
}

void CpuOps::cross_entropy_forward(Tensor loss, Tensor nll, Tensor lse, const Tensor& logits,
                                   const Tensor& targets, double smoothing) {
  const int64_t V = logits.dim(-1), N = logits.numel() / V;
  check_numel(targets, N, "cross_entropy targets");
  check_dtype(targets, DType::i32, "cross_entropy targets");
  check_numel(loss, N, "cross_entropy loss");
  check_numel(nll, N, "cross_entropy nll");
  check_numel(lse, N, "cross_entropy lse");
  const int32_t* y = targets.data<int32_t>();
  for (int64_t i = 0; i < N; ++i)
    SY_CHECK(y[i] < V, "target {} at row {} outside the vocabulary [0, {})", y[i], i, V);
  SY_FLOAT_DISPATCH(logits.dtype,
                    cpu::cross_entropy_forward<T>(loss.data<T>(), nll.data<T>(), lse.data<T>(),
                                                  logits.data<T>(), y, N, V,
                                                  static_cast<T>(smoothing)));
}

void CpuOps::cross_entropy_backward(Tensor dlogits, const Tensor& logits, const Tensor& lse,
                                    const Tensor& targets, double smoothing, double scale) {
  const int64_t V = logits.dim(-1), N = logits.numel() / V;
  check_numel(dlogits, N * V, "cross_entropy dlogits");
  SY_FLOAT_DISPATCH(logits.dtype, cpu::cross_entropy_backward<T>(
                                      dlogits.data<T>(), logits.data<T>(), lse.data<T>(),
                                      targets.data<int32_t>(), N, V, static_cast<T>(smoothing),
                                      static_cast<T>(scale)));
}

void CpuOps::add(Tensor y, const Tensor& x) {
  check_numel(y, x.numel(), "add y");
  SY_FLOAT_DISPATCH(x.dtype, add_values(y.data<T>(), x.data<T>(), x.numel()));
}

void CpuOps::scale(Tensor x, double s) {
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

double CpuOps::sum_squares(const Tensor& x) {
  double r = 0;
  SY_FLOAT_DISPATCH(x.dtype,
                    r = chunked_sum(x.data<T>(), x.numel(), [](double v) { return v * v; }));
  return r;
}

double CpuOps::sum(const Tensor& x) {
  double r = 0;
  SY_FLOAT_DISPATCH(x.dtype, r = chunked_sum(x.data<T>(), x.numel(), [](double v) { return v; }));
  return r;
}

void CpuOps::adam_update(Tensor param, const Tensor& grad, Tensor m, Tensor v,
                         const AdamArgs& a) {
  const int64_t n = param.numel();
  check_numel(grad, n, "adam grad");
  check_numel(m, n, "adam m");
  check_numel(v, n, "adam v");
  SY_FLOAT_DISPATCH(param.dtype, cpu::adam_update<T>(param.data<T>(), grad.data<T>(),
                                                     m.data<T>(), v.data<T>(), n, a));
}

}  // namespace sy
