#pragma once
// The op table: every op of backend/ops.h as cases, each one row — how to make its
// inputs, how to run it on a backend, and what it must give — with its tolerance
// beside it. tests/backend/test_backend_ops.cpp runs every case three ways:
//   reference            the CPU backend in f64 and f32 against a naive double
//                        reference written from the formula (reference.h)
//   finite differences   backward ops in f64 against central differences of the
//                        naive forward: L = Σ dout ⊙ forward(inputs)
//   device               every other backend (CUDA) in f32 against the CPU in f32,
//                        and the same bits when run twice; and, for the cases that
//                        set `bf16`, both with bf16 operands
// Adding an op means adding its cases here.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "backend/ops.h"

namespace sy::optest {

using Vec = std::vector<double>;

// A tensor of a case on the host: floating data in double, or i32 indices.
struct HostTensor {
  std::vector<int64_t> shape;
  bool index = false;
  Vec f;                    // floating data (index = false)
  std::vector<int32_t> i;   // index data (index = true)
  int64_t numel() const;
};
using Host = std::map<std::string, HostTensor>;
using Bound = std::map<std::string, Tensor>;  // the same tensors on a backend

struct Tol {
  double rtol, atol;
};

struct OpCase {
  std::string name;  // unique, [a-z0-9_]
  // Inputs and the initial values of outputs (zero, or random where an op
  // accumulates: the contract says so).
  std::function<Host()> make;
  // Runs the op(s) on a backend; every tensor of `make` is bound by name.
  std::function<void(Ops&, Bound&)> run;
  std::vector<std::string> outputs;  // what is compared
  // Forward ops: writes the expected outputs into the host tensors, in double.
  std::function<void(Host&)> reference;
  // Backward ops: the naive forward that finite differences differentiate, and
  // which gradient output belongs to which input (L = Σ dout ⊙ forward).
  std::function<Vec(const Host&)> forward;
  std::string dout;
  std::vector<std::pair<std::string, std::string>> grads;  // (input, gradient output)
  Tol f64{1e-10, 1e-12};  // CPU f64 vs reference / finite differences
  Tol f32{2e-5, 2e-6};    // CPU f32 vs reference
  Tol device{1e-5, 1e-6};  // another backend (f32) vs the CPU (f32)
  bool device_only = false;  // too large for the naive reference: device parity only
  // bf16 operands (Ops::set_bf16_operands): the CUDA op against the CPU op in the
  // same mode, where the case sets it (products of bf16 operands are exact in fp32,
  // so only the order of fp32 sums differs, until a sum is rounded to bf16 again).
  bool bf16 = false;
  Tol bf16_device{0, 0};
};

const std::vector<OpCase>& op_cases();

// Runs `c` on `ops` in `dtype` (floating tensors; indices stay i32) and returns
// every tensor read back, in double.
Host run_case(Ops& ops, DType dtype, const OpCase& c, const Host& inputs);

// Max over i of |got − want| / (atol + rtol·|want|) (NaN where want is NaN must be
// NaN in got too); ≤ 1 means within tolerance.
double tolerance_ratio(const Vec& got, const Vec& want, Tol t);

// Central differences of L = Σ dout ⊙ forward(h) with respect to `input`, in double.
Vec numeric_gradient(const OpCase& c, Host h, const std::string& input, double step = 1e-6);

}  // namespace sy::optest
