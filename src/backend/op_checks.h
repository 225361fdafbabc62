#pragma once
// The shape and dtype checks every backend makes before an op runs, and the
// attention dimensions they derive from qkv and the cache.
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

struct AttnDims {
  int64_t B, Tn, NH, D;
};

// qkv [B,T,3C] with C = NH·D; every cache buffer must hold its share.
inline AttnDims attention_dims(const Tensor& qkv, int64_t n_heads, const AttentionCache& c) {
  SY_CHECK(qkv.ndim == 3 && qkv.dim(2) % 3 == 0, "qkv must be [B,T,3C], got {}", qkv.shape_str());
  const int64_t C = qkv.dim(2) / 3;
  SY_CHECK(C % n_heads == 0, "C={} not divisible by {} heads", C, n_heads);
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
