// Activations and the GLU product on the GPU, elementwise; kernels are instantiated
// per activation so the switch stays outside them.
#include "backend/cuda/cuda_ops_impl.h"

namespace sy {
namespace {

template <Activation A>
__global__ void act_forward(float* out, const float* x, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  float f, df;
  cuda::act_value_grad<A>(x[i], f, df);
  out[i] = f;
}

template <Activation A>
__global__ void act_backward(float* dx, const float* dout, const float* x, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  float f, df;
  cuda::act_value_grad<A>(x[i], f, df);
  dx[i] = dout[i] * df;
}

// ag [N, 2H] = [a | g] per row; h [N, H] = act(a) ⊙ g.
template <Activation A>
__global__ void glu_fwd(float* h, const float* ag, int64_t N, int64_t H) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= N * H) return;
  const int64_t i = k / H, j = k % H;
  float f, df;
  cuda::act_value_grad<A>(ag[i * 2 * H + j], f, df);
  h[k] = f * ag[i * 2 * H + H + j];
}

template <Activation A>
__global__ void glu_bwd(float* dag, const float* dh, const float* ag, int64_t N, int64_t H) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= N * H) return;
  const int64_t i = k / H, j = k % H;
  const float a = ag[i * 2 * H + j], g = ag[i * 2 * H + H + j];
  float f, df;
  cuda::act_value_grad<A>(a, f, df);
  dag[i * 2 * H + j] = dh[k] * g * df;
  dag[i * 2 * H + H + j] = dh[k] * f;
}

#define SY_ACT_LAUNCH(act, kernel, n, stream, ...)                                                \
  switch (act) {                                                                                  \
    case Activation::gelu:                                                                        \
      kernel<Activation::gelu><<<cuda::blocks_for(n), cuda::kBlock, 0, stream>>>(__VA_ARGS__);    \
      break;                                                                                      \
    case Activation::silu:                                                                        \
      kernel<Activation::silu><<<cuda::blocks_for(n), cuda::kBlock, 0, stream>>>(__VA_ARGS__);    \
      break;                                                                                      \
    case Activation::relu:                                                                        \
      kernel<Activation::relu><<<cuda::blocks_for(n), cuda::kBlock, 0, stream>>>(__VA_ARGS__);    \
      break;                                                                                      \
  }                                                                                               \
  SY_CUDA_LAUNCHED()

}  // namespace

void CudaOps::activation_forward_impl(Activation act, Tensor out, const Tensor& x) {
  const int64_t n = x.numel();
  SY_ACT_LAUNCH(act, act_forward, n, stream_, out.data<float>(), x.data<float>(), n);
}

void CudaOps::activation_backward_impl(Activation act, Tensor dx, const Tensor& dout,
                                       const Tensor& x) {
  const int64_t n = x.numel();
  SY_ACT_LAUNCH(act, act_backward, n, stream_, dx.data<float>(), dout.data<float>(),
                x.data<float>(), n);
}

void CudaOps::glu_forward_impl(Activation act, Tensor h, const Tensor& ag) {
  const int64_t H = h.dim(-1), N = h.numel() / H;
  SY_ACT_LAUNCH(act, glu_fwd, N * H, stream_, h.data<float>(), ag.data<float>(), N, H);
}

void CudaOps::glu_backward_impl(Activation act, Tensor dag, const Tensor& dh, const Tensor& ag) {
  const int64_t H = dh.dim(-1), N = dh.numel() / H;
  SY_ACT_LAUNCH(act, glu_bwd, N * H, stream_, dag.data<float>(), dh.data<float>(),
                ag.data<float>(), N, H);
}

}  // namespace sy
