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

void CpuOps::route_plan_impl(const RoutePlanTensors& plan, Tensor first_count, Tensor lse, Tensor stats,
                             Tensor scratch, const Tensor& logits, const Tensor& probs, const RouteSpec& spec) {
  char* base = scratch.data<char>();
  const route::Scratch w = route::carve(base, scratch.bytes(), spec);
  route::BumpAllocator alloc(w.temp, w.temp_bytes);
  SY_FLOAT_DISPATCH(probs.dtype,
                    route::plan<T>(thrust::omp::par(alloc), spec, logits.data<T>(), probs.data<T>(),
                                   plan.slot_row.data<int32_t>(), plan.slot_gate.data<T>(),
                                   plan.token_begin.data<int32_t>(), plan.token_slots.data<int32_t>(),
                                   first_count.data<T>(), lse.data<T>(), stats.data<T>(), w));
}

void CpuOps::route_backward_impl(Tensor dlogits, const Tensor& dgate, const RoutePlanTensors& plan,
                                 const Tensor& probs, const Tensor& first_count, const Tensor& lse,
                                 const RouteSpec& spec, double balance_scale, double z_scale) {
  SY_FLOAT_DISPATCH(probs.dtype,
                    route::backward<T>(thrust::omp::par, spec, dgate.data<T>(), plan.token_begin.data<int32_t>(),
                                       plan.token_slots.data<int32_t>(), probs.data<T>(), first_count.data<T>(),
                                       lse.data<T>(), balance_scale, z_scale, dlogits.data<T>()));
}
#else
bool CpuOps::routes_on_backend() const { return false; }

void CpuOps::route_plan_impl(const RoutePlanTensors&, Tensor, Tensor, Tensor, Tensor, const Tensor&, const Tensor&,
                             const RouteSpec&) {
  SY_CHECK(false, "this build has no Thrust headers: the CPU backend cannot route");
}

void CpuOps::route_backward_impl(Tensor, const Tensor&, const RoutePlanTensors&, const Tensor&, const Tensor&,
                                 const Tensor&, const RouteSpec&, double, double) {
  SY_CHECK(false, "this build has no Thrust headers: the CPU backend cannot route");
}
#endif

}  // namespace sy
