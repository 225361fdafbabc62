// MoE routing on the CUDA backend: route_algorithms.h on Thrust's CUDA system, on
// this backend's stream. par_nosync plus the op's own scratch for Thrust's
// temporaries: no cudaMalloc, no synchronisation, no size read back.
#include <thrust/system/cuda/execution_policy.h>

#include "backend/cuda/cuda_ops_impl.h"
#include "backend/route_algorithms.h"

namespace sy {

bool CudaOps::routes_on_backend() const { return true; }

namespace {
const float* optional(const Tensor& t) { return t.empty() ? nullptr : t.data<float>(); }
}  // namespace

void CudaOps::jitter_rows_impl(Tensor out, const Tensor& in, const JitterSpec& spec) {
  route::jitter<float>(thrust::cuda::par_nosync.on(stream_), spec, in.data<float>(), in.numel(), in.dim(-1),
                       out.data<float>());
  SY_CUDA_LAUNCHED();
}

void CudaOps::route_plan_impl(const RoutePlanTensors& plan, const RouteState& st, const RouteInputs& in,
                              const RouteSpec& spec) {
  const route::Scratch w = route::carve(st.scratch.data<char>(), st.scratch.bytes(), spec);
  route::BumpAllocator alloc(w.temp, w.temp_bytes);
  route::plan<float>(thrust::cuda::par_nosync(alloc).on(stream_), spec, in.logits.data<float>(),
                     in.probs.data<float>(), optional(in.noise_logits), plan.slot_row.data<int32_t>(),
                     plan.slot_gate.data<float>(), plan.token_begin.data<int32_t>(), plan.token_slots.data<int32_t>(),
                     st.first_count.data<float>(), st.lse.data<float>(), st.stats.data<float>(), w);
  SY_CUDA_LAUNCHED();
}

void CudaOps::route_backward_impl(Tensor dlogits, Tensor dnoise_logits, const Tensor& dgate,
                                  const RoutePlanTensors& plan, const RouteState& st, const RouteInputs& in,
                                  const RouteSpec& spec, double aux_scale, double z_scale) {
  const route::Scratch w = route::carve(st.scratch.data<char>(), st.scratch.bytes(), spec);
  route::backward<float>(thrust::cuda::par_nosync.on(stream_), spec, dgate.data<float>(),
                         plan.token_begin.data<int32_t>(), plan.token_slots.data<int32_t>(), in.logits.data<float>(),
                         in.probs.data<float>(), optional(in.noise_logits), w, aux_scale, z_scale,
                         dlogits.data<float>(),
                         dnoise_logits.empty() ? nullptr : dnoise_logits.data<float>());
  SY_CUDA_LAUNCHED();
}

}  // namespace sy
