#include "train/memory.h"

#include <algorithm>

#include "core/errors.h"
#include "moe/router_table.h"

namespace sy {

MemoryNeed estimate_memory(const Config& cfg, int expert_parallel) {
  using R = long double;
  const ModelConfig& m = cfg.model;
  const MoeConfig& moe = cfg.moe;
  const R V = m.vocab_size, C = m.d_model, H = m.d_ff, T = cfg.train.seq_len, L = m.n_layers;
  const R B = cfg.train.batch_size, NH = m.n_heads, tokens = B * T;
  (void)L;
  const R norm = m.norm == NormKind::layernorm ? 2 * C : C;
  MemoryNeed need;
  R params = V * C + (m.positions == PosKind::learned ? R(m.max_seq) * C : 0) + norm +
             (m.tie_embeddings ? 0 : V * C);
  const R chunk = R(cfg.train.logits_chunk_rows), logit_rows = chunk > 0 && chunk < tokens ? chunk : tokens;
  R activations = logit_rows * 4 * V + tokens * 8 * C;  // logits (and their gradient), embedding, loss
  // precision: bf16 on the CPU rounds copies of each product's operands; the
  // largest pair is the classifier's (logit rows × vocabulary, and the head).
  if (cfg.precision == Precision::bf16) activations += logit_rows * V + V * C;
  const R He = moe.expert_d_ff > 0 ? R(moe.expert_d_ff) : H;
  const R E = moe.num_experts, local_E = E / std::max(expert_parallel, 1);
  const R expert_mats = moe.expert_kind == ExpertKind::glu ? 3 : 2;
  // Slots per token the experts process (capacity bounds it; dropless: every choice).
  const R slots_per_token = moe.enabled() ? R(router_info(moe.router).experts_per_token(moe)) : R(0);
  for (int64_t l = 0; l < m.n_layers; ++l) {
    params += 2 * norm + 4 * C * C;  // norms, qkv, output projection
    if (cfg.attention_kernel == AttentionKernel::fused)
      activations += tokens * (12 * C + 2 * NH);  // residual, qkv (+ grads), log-sum-exps
    else
      activations += tokens * (16 * C + 3 * NH * T);  // residual, qkv, heads, probabilities (+ grads)
    if (moe.is_moe_block(l)) {
      params += E * C * (router_info(moe.router).noise_weights ? 2 : 1) + local_E * expert_mats * C * He;
      activations += tokens * slots_per_token * std::max<R>(1, moe.capacity_factor) * (6 * He + 6 * C);
    } else {
      params += 3 * C * H;
      activations += tokens * 6 * H;
    }
  }
  need.params = params;
  need.state_bytes = params * 4 * 4;  // fp32 value, gradient, m, v
  need.activation_bytes = activations * 4;  // fp32; micro-batches reuse one set
  if (cfg.data.source == DataSource::synthetic) need.data_bytes = R(cfg.data.synthetic_tokens) * 4 * 2;
  return need;
}

void check_memory(const Config& cfg, int expert_parallel, uint64_t capacity_bytes,
                  const std::string& device) {
  const MemoryNeed need = estimate_memory(cfg, expert_parallel);
  if (need.total() <= static_cast<long double>(capacity_bytes)) return;
  const auto gib = [](long double b) { return static_cast<double>(b / (1024.0L * 1024 * 1024)); };
  throw Error(ExitCode::bad_input,
              fmt::format("this config needs about {:.3g} GiB, and the {} has {:.3g} GiB: {:.3g} "
                          "parameters ({:.3g} GiB with gradients and Adam's moments), {:.3g} GiB of "
                          "activations for a micro-batch of {} × {} tokens{}. Lower model.vocab_size "
                          "({}), model.d_model ({}), model.n_layers ({}), moe.num_experts ({}), "
                          "train.batch_size or train.seq_len",
                          gib(need.total()), device, gib(capacity_bytes),
                          static_cast<double>(need.params), gib(need.state_bytes),
                          gib(need.activation_bytes), cfg.train.batch_size, cfg.train.seq_len,
                          need.data_bytes > 0
                              ? fmt::format(", {:.3g} GiB of synthetic data", gib(need.data_bytes))
                              : "",
                          cfg.model.vocab_size, cfg.model.d_model, cfg.model.n_layers,
                          cfg.moe.num_experts));
}

}  // namespace sy
