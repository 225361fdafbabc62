#include "model/embedding.h"

#include <cmath>
#include <vector>

#include "core/errors.h"

namespace sy {

Embedding::Embedding(LayerEnv env, const ModelConfig& cfg) : env_(env), cfg_(cfg) {
  wte_ = env.params.add("embed.tokens", {cfg.vocab_size, cfg.d_model}, Init::normal,
                        cfg.init_std, /*decay=*/false);
  if (cfg.positions == PosKind::learned)
    wpe_ = env.params.add("embed.positions", {cfg.max_seq, cfg.d_model}, Init::normal,
                          cfg.init_std, /*decay=*/false);
}

void Embedding::allocate(Arena& arena, int64_t batch, int64_t seq) {
  const int64_t C = cfg_.d_model;
  out = arena.make(env_.dtype, {batch, seq, C});
  if (cfg_.positions == PosKind::sinusoidal) {
    sinusoids_ = arena.make(env_.dtype, {cfg_.max_seq, C});
    // PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(t / 10000^(2i/C))
    std::vector<double> pe(static_cast<size_t>(cfg_.max_seq * C));
    for (int64_t t = 0; t < cfg_.max_seq; ++t)
      for (int64_t c = 0; c < C; ++c) {
        const double freq = std::pow(10000.0, -static_cast<double>(c - c % 2) / C);
        pe[t * C + c] = c % 2 == 0 ? std::sin(t * freq) : std::cos(t * freq);
      }
    if (env_.dtype == DType::f64) {
      env_.ops.from_host(sinusoids_, pe.data());
    } else {
      std::vector<float> f(pe.begin(), pe.end());
      env_.ops.from_host(sinusoids_, f.data());
    }
  }
}

void Embedding::forward(const Tensor& ids, int64_t first_position) {
  ids_ = ids;
  const Tensor table = wpe_ >= 0 ? env_.params.value(wpe_) : sinusoids_;  // [max_seq, C]
  SY_CHECK(first_position >= 0 && first_position + ids.dim(-1) <= cfg_.max_seq,
           "positions {}..{} exceed model.max_seq {}", first_position, first_position + ids.dim(-1) - 1,
           cfg_.max_seq);
  const int64_t C = cfg_.d_model;
  const Tensor pos = table.view({cfg_.max_seq - first_position, C}, first_position * C);
  env_.ops.embedding_forward(out, ids, env_.params.value(wte_), pos);
}

void Embedding::backward(const Tensor& dout) {
  const Tensor dpos = wpe_ >= 0 ? env_.params.grad(wpe_) : Tensor{};
  env_.ops.embedding_backward(env_.params.grad(wte_), dpos, dout, ids_);
}

}  // namespace sy
