// MoE routing on the CUDA backend: route_algorithms.h on Thrust's CUDA system, on
// this backend's stream. par_nosync plus the op's own scratch for Thrust's
// temporaries: no cudaMalloc, no synchronisation, no size read back.
#include <thrust/system/cuda/execution_policy.h>

#include "backend/cuda/cuda_ops_impl.h"
#include "backend/route_algorithms.h"

namespace sy {

bool CudaOps::routes_on_backend() const { return true; }

void CudaOps::route_plan_impl(const RoutePlanTensors& plan, Tensor first_count, Tensor lse, Tensor stats,
                              Tensor scratch, const Tensor& logits, const Tensor& probs, const RouteSpec& spec) {
  const route::Scratch w = route::carve(scratch.data<char>(), scratch.bytes(), spec);
  route::BumpAllocator alloc(w.temp, w.temp_bytes);
  route::plan<float>(thrust::cuda::par_nosync(alloc).on(stream_), spec, logits.data<float>(), probs.data<float>(),
                     plan.slot_row.data<int32_t>(), plan.slot_gate.data<float>(), plan.token_begin.data<int32_t>(),
                     plan.token_slots.data<int32_t>(), first_count.data<float>(), lse.data<float>(),
                     stats.data<float>(), w);
  SY_CUDA_LAUNCHED();
}

void CudaOps::route_backward_impl(Tensor dlogits, const Tensor& dgate, const RoutePlanTensors& plan,
                                  const Tensor& probs, const Tensor& first_count, const Tensor& lse,
                                  const RouteSpec& spec, double balance_scale, double z_scale) {
  route::backward<float>(thrust::cuda::par_nosync.on(stream_), spec, dgate.data<float>(),
                         plan.token_begin.data<int32_t>(), plan.token_slots.data<int32_t>(), probs.data<float>(),
                         first_count.data<float>(), lse.data<float>(), balance_scale, z_scale,
                         dlogits.data<float>());
  SY_CUDA_LAUNCHED();
}

}  // namespace sy
