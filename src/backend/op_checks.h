#pragma once
// The checks the op front (ops.cpp) makes before any backend runs an op, and the
// attention dimensions derived from qkv and the cache.
#include <initializer_list>

#include "backend/ops.h"
#include "core/errors.h"

namespace sy {

inline void check_numel(const Tensor& t, int64_t n, const char* what) {
  SY_CHECK(t.numel() == n, "{} has {} elements {}, expected {}", what, t.numel(), t.shape_str(),
           n);
}
inline void check_dtype(const Tensor& t, DType d, const char* what) {
  SY_CHECK(t.dtype == d, "{} is {}, expected {}", what, dtype_name(t.dtype), dtype_name(d));
}

inline void check_device(const Tensor& t, Device d, const char* what) {
  SY_CHECK(t.empty() || t.device == d, "{} is in {} memory, but the backend is {}", what,
           device_name(t.device), device_name(d));
}
// Index tensors live where the backend computes, like every other argument.
inline void check_index(const Tensor& t, Device d, const char* what) {
  check_dtype(t, DType::i32, what);
  check_device(t, d, what);
}

// Each named tensor has `dtype` and lives on `device`.
struct NamedTensor {
  Tensor t;
  const char* what;
};
inline void check_same(DType dtype, Device device, std::initializer_list<NamedTensor> args) {
  for (const NamedTensor& a : args) {
    check_dtype(a.t, dtype, a.what);
    check_device(a.t, device, a.what);
  }
}

// Value checks: only for index tensors in host memory (reading device memory here
// would cost a copy and a synchronisation per op).
inline bool on_host(const Tensor& t) { return t.device == Device::cpu && !t.empty(); }

// Token ids come from data files, so an id outside the vocabulary is bad input.
inline void check_token_ids(const Tensor& ids, int64_t V) {
  if (!on_host(ids)) return;
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < ids.numel(); ++i)
    if (id[i] < 0 || id[i] >= V)
      fatalf(ExitCode::bad_input, "token id {} at position {} is outside the vocabulary [0, {})",
             id[i], i, V);
}
// Targets: < 0 marks a row without loss; otherwise inside the vocabulary.
inline void check_targets(const Tensor& targets, int64_t V) {
  if (!on_host(targets)) return;
  const int32_t* y = targets.data<int32_t>();
  for (int64_t i = 0; i < targets.numel(); ++i)
    SY_CHECK(y[i] < V, "target {} at row {} outside the vocabulary [0, {})", y[i], i, V);
}
// Indices in [lowest, limit): lowest −1 where −1 marks an empty slot.
inline void check_index_range(const Tensor& rows, int64_t limit, const char* what, int64_t lowest = 0) {
  if (!on_host(rows)) return;
  const int32_t* r = rows.data<int32_t>();
  for (int64_t i = 0; i < rows.numel(); ++i)
    SY_CHECK(r[i] >= lowest && r[i] < limit, "{}[{}] = {} outside [{}, {})", what, i, r[i], lowest, limit);
}
// begin [N+1] splits the first begin[N] of slots into N runs: begin[0] = 0,
// non-decreasing, begin[N] ≤ the number of slots (the rest unused); each slot
// indexes one of S rows.
inline void check_csr(const Tensor& begin, const Tensor& slots, int64_t S, const char* what) {
  if (!on_host(begin)) return;
  const int32_t* b = begin.data<int32_t>();
  const int64_t N = begin.numel() - 1;
  SY_CHECK(b[0] == 0 && b[N] <= slots.numel(), "{}: begin spans [{}, {}) of {} slots", what, b[0],
           b[N], slots.numel());
  for (int64_t t = 0; t < N; ++t)
    SY_CHECK(b[t] <= b[t + 1], "{}: begin[{}] = {} > begin[{}] = {}", what, t, b[t], t + 1, b[t + 1]);
  check_index_range(slots.view({b[N]}), S, what);
}

struct AttnDims {
  int64_t B, Tn, NH, D;
};

// qkv [B,T,3C] with C = NH·D; every cache buffer must hold its share.
inline AttnDims attention_dims(const Tensor& qkv, int64_t n_heads, const AttentionCache& c) {
  SY_CHECK(qkv.ndim == 3 && qkv.dim(2) % 3 == 0, "qkv must be [B,T,3C], got {}", qkv.shape_str());
  const int64_t C = qkv.dim(2) / 3;
  SY_CHECK(n_heads > 0 && C % n_heads == 0, "C={} not divisible by {} heads", C, n_heads);
  AttnDims d{qkv.dim(0), qkv.dim(1), n_heads, C / n_heads};
  const int64_t n = d.B * d.NH * d.Tn * d.D;
  check_numel(c.q, n, "attention q");
  check_numel(c.k, n, "attention k");
  check_numel(c.v, n, "attention v");
  check_numel(c.out_heads, n, "attention out_heads");
  check_numel(c.probs, d.B * d.NH * d.Tn * d.Tn, "attention probs");
  return d;
}

}  // namespace sy
