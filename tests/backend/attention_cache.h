#pragma once
// An AttentionCache over host vectors (kept alive by `store`), for op tests.
#include <vector>

#include "backend/ops.h"
#include "test_util.h"

namespace sy::test {

inline AttentionCache make_attention_cache(std::vector<std::vector<double>>& store, int64_t B,
                                           int64_t NH, int64_t T, int64_t D) {
  store.assign(9, {});
  AttentionCache c;
  int i = 0;
  for (Tensor* t : {&c.q, &c.k, &c.v, &c.out_heads, &c.dq, &c.dk, &c.dv}) {
    store[i].assign(static_cast<size_t>(B * NH * T * D), 0.0);
    *t = as_tensor(store[i++], {B, NH, T, D});
  }
  for (Tensor* t : {&c.probs, &c.dprobs}) {
    store[i].assign(static_cast<size_t>(B * NH * T * T), 0.0);
    *t = as_tensor(store[i++], {B, NH, T, T});
  }
  return c;
}

}  // namespace sy::test
