// Every case of the op table (op_table.cpp), every way it can be checked:
//   OpReference.<case>           CPU f64 and f32 against the naive double reference
//   OpFiniteDifferences.<case>   CPU f64 backward against central differences of
//                                the naive forward
//   OpDevice.<case>              (CUDA builds) the GPU in f32 against the CPU in f32,
//                                and the same bits twice; "skipped: no GPU" without one
//   OpDeviceBf16.<case>          (CUDA builds) the same with bf16 operands on both
// The tolerances stand beside each case in the table.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/op_table.h"
#ifdef SY_TEST_CUDA
#include "backend/cuda/cuda_ops.h"
#include "backend/gpu_test.h"
#endif

namespace sy::optest {
namespace {

std::vector<size_t> cases_where(bool (*keep)(const OpCase&)) {
  std::vector<size_t> ids;
  for (size_t i = 0; i < op_cases().size(); ++i)
    if (keep(op_cases()[i])) ids.push_back(i);
  return ids;
}
std::string case_name(const ::testing::TestParamInfo<size_t>& info) { return op_cases()[info.param].name; }

void expect_outputs(const OpCase& c, const Host& got, const Host& want, Tol t, const std::string& what) {
  for (const std::string& o : c.outputs) {
    const double r = tolerance_ratio(got.at(o).f, want.at(o).f, t);
    EXPECT_LE(r, 1.0) << c.name << " " << what << ": output '" << o << "' off by " << r
                      << "× its tolerance (rtol " << t.rtol << ", atol " << t.atol << ")";
  }
}

#ifndef SY_TEST_CUDA  // the CPU checks live in test_backend; test_backend_cuda adds the device
class OpReference : public ::testing::TestWithParam<size_t> {};
class OpFiniteDifferences : public ::testing::TestWithParam<size_t> {};

TEST_P(OpReference, CpuMatchesTheNaiveReference) {
  const OpCase& c = op_cases()[GetParam()];
  const Host inputs = c.make();
  Host want = inputs;
  c.reference(want);
  auto cpu = make_cpu_ops();
  expect_outputs(c, run_case(*cpu, DType::f64, c, inputs), want, c.f64, "f64");
  expect_outputs(c, run_case(*cpu, DType::f32, c, inputs), want, c.f32, "f32");
}

TEST_P(OpFiniteDifferences, CpuBackwardMatchesCentralDifferences) {
  const OpCase& c = op_cases()[GetParam()];
  const Host inputs = c.make();
  auto cpu = make_cpu_ops();
  const Host got = run_case(*cpu, DType::f64, c, inputs);
  for (const auto& [input, grad] : c.grads) {
    Vec want = numeric_gradient(c, inputs, input);
    const Vec& initial = inputs.at(grad).f;  // gradients accumulate onto what was there
    for (size_t i = 0; i < want.size(); ++i) want[i] += initial[i];
    const double r = tolerance_ratio(got.at(grad).f, want, c.f64);
    EXPECT_LE(r, 1.0) << c.name << ": d/d" << input << " (" << grad << ") off by " << r << "× its tolerance";
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpReference,
                         ::testing::ValuesIn(cases_where([](const OpCase& c) {
                           return static_cast<bool>(c.reference) && !c.device_only;
                         })),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Ops, OpFiniteDifferences,
                         ::testing::ValuesIn(cases_where([](const OpCase& c) {
                           return static_cast<bool>(c.forward) && !c.device_only;
                         })),
                         case_name);
#endif

#ifdef SY_TEST_CUDA
class OpDevice : public ::testing::TestWithParam<size_t> {};

TEST_P(OpDevice, CudaMatchesTheCpuAndRepeatsItsBits) {
  SY_REQUIRE_GPUS(1);
  const OpCase& c = op_cases()[GetParam()];
  const Host inputs = c.make();
  auto cpu = make_cpu_ops();
  auto gpu = make_cuda_ops();
  const Host want = run_case(*cpu, DType::f32, c, inputs);
  const Host got = run_case(*gpu, DType::f32, c, inputs);
  expect_outputs(c, got, want, c.device, "cuda vs cpu");
  const Host again = run_case(*gpu, DType::f32, c, inputs);
  expect_outputs(c, again, got, {0, 0}, "cuda twice");
}

INSTANTIATE_TEST_SUITE_P(Ops, OpDevice, ::testing::ValuesIn(cases_where([](const OpCase&) { return true; })),
                         case_name);

// bf16 operands on both backends: the CUDA op (tensor cores, or its kernels'
// rounding) against the CPU's bf16 reference, within the case's bf16 tolerance.
class OpDeviceBf16 : public ::testing::TestWithParam<size_t> {};

TEST_P(OpDeviceBf16, CudaMatchesTheCpuInBf16AndRepeatsItsBits) {
  SY_REQUIRE_GPUS(1);
  const OpCase& c = op_cases()[GetParam()];
  const Host inputs = c.make();
  auto cpu = make_cpu_ops();
  auto gpu = make_cuda_ops();
  cpu->set_bf16_operands(true);
  gpu->set_bf16_operands(true);
  const Host want = run_case(*cpu, DType::f32, c, inputs);
  const Host got = run_case(*gpu, DType::f32, c, inputs);
  expect_outputs(c, got, want, c.bf16_device, "cuda vs cpu, bf16 operands");
  const Host again = run_case(*gpu, DType::f32, c, inputs);
  expect_outputs(c, again, got, {0, 0}, "cuda twice, bf16 operands");
}

INSTANTIATE_TEST_SUITE_P(Ops, OpDeviceBf16, ::testing::ValuesIn(cases_where([](const OpCase& c) { return c.bf16; })),
                         case_name);
#endif

}  // namespace
}  // namespace sy::optest
