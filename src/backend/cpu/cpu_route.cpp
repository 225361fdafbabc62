// MoE routing on the CPU backend: route_algorithms.h on Thrust's OpenMP system,
// the same source the CUDA backend compiles with nvcc. Built only when the CCCL
// (Thrust) headers were found; without them the backend says it cannot route
// (routes_on_backend() is false) and the model keeps routing on the host.
#include "backend/cpu/cpu_ops_impl.h"

#if SY_HAVE_THRUST
#include <thrust/system/omp/execution_policy.h>

#include "backend/route_algorithms.h"
#endif

namespace sy {

#if SY_HAVE_THRUST
bool CpuOps::routes_on_backend() const { return true; }

namespace {
template <class T>
const T* optional(const Tensor& t) {
  return t.empty() ? nullptr : t.data<T>();
}
}  // namespace

void CpuOps::jitter_rows_impl(Tensor out, const Tensor& in, const JitterSpec& spec) {
  SY_FLOAT_DISPATCH(in.dtype, route::jitter<T>(thrust::omp::par, spec, in.data<T>(), in.numel(), in.dim(-1),
                                               out.data<T>()));
}

void CpuOps::route_plan_impl(const RoutePlanTensors& plan, const RouteState& st, const RouteInputs& in,
                             const RouteSpec& spec) {
  // Thrust's OpenMP sort allocates from several threads at once: ordinary malloc
  // here (the bump allocator serves the CUDA backend, where one host thread asks).
  const route::Scratch w = route::carve(st.scratch.data<char>(), st.scratch.bytes(), spec);
  SY_FLOAT_DISPATCH(in.probs.dtype,
                    route::plan<T>(thrust::omp::par, spec, in.logits.data<T>(), in.probs.data<T>(),
                                   optional<T>(in.noise_logits), plan.slot_row.data<int32_t>(),
                                   plan.slot_gate.data<T>(), plan.token_begin.data<int32_t>(),
                                   plan.token_slots.data<int32_t>(), st.first_count.data<T>(), st.lse.data<T>(),
                                   st.stats.data<T>(), w));
}

void CpuOps::route_backward_impl(Tensor dlogits, Tensor dnoise_logits, const Tensor& dgate,
                                 const RoutePlanTensors& plan, const RouteState& st, const RouteInputs& in,
                                 const RouteSpec& spec, double aux_scale, double z_scale) {
  const route::Scratch w = route::carve(st.scratch.data<char>(), st.scratch.bytes(), spec);
  SY_FLOAT_DISPATCH(in.probs.dtype,
                    route::backward<T>(thrust::omp::par, spec, dgate.data<T>(), plan.token_begin.data<int32_t>(),
                                       plan.token_slots.data<int32_t>(), in.logits.data<T>(), in.probs.data<T>(),
                                       optional<T>(in.noise_logits), w, aux_scale, z_scale, dlogits.data<T>(),
                                       dnoise_logits.empty() ? nullptr : dnoise_logits.data<T>()));
}
#else
bool CpuOps::routes_on_backend() const { return false; }

void CpuOps::jitter_rows_impl(Tensor, const Tensor&, const JitterSpec&) {
  SY_CHECK(false, "this build has no Thrust headers: the CPU backend cannot route");
}

void CpuOps::route_plan_impl(const RoutePlanTensors&, const RouteState&, const RouteInputs&, const RouteSpec&) {
  SY_CHECK(false, "this build has no Thrust headers: the CPU backend cannot route");
}

void CpuOps::route_backward_impl(Tensor, Tensor, const Tensor&, const RoutePlanTensors&, const RouteState&,
                                 const RouteInputs&, const RouteSpec&, double, double) {
  SY_CHECK(false, "this build has no Thrust headers: the CPU backend cannot route");
}
#endif

}  // namespace sy
