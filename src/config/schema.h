#pragma once
// The config schema, written once: visit_config() names every key of every section
// with its field; a binder (YAML → Config) and an emitter (Config → YAML) both
// walk it, so reading and writing can never disagree.
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "moe/router_table.h"

namespace sy {

template <class E>
using Choices = std::vector<std::pair<const char*, E>>;

inline const Choices<Arch> kArchs = {{"decoder", Arch::decoder}, {"encoder", Arch::encoder}};
inline const Choices<PosKind> kPositions = {{"learned", PosKind::learned},
                                            {"sinusoidal", PosKind::sinusoidal}};
inline const Choices<Activation> kActivations = {
    {"gelu", Activation::gelu}, {"silu", Activation::silu}, {"relu", Activation::relu}};
inline const Choices<NormKind> kNorms = {{"layernorm", NormKind::layernorm},
                                         {"rmsnorm", NormKind::rmsnorm}};
inline const Choices<OptimizerKind> kOptimizers = {{"adam", OptimizerKind::adam},
                                                   {"adamw", OptimizerKind::adamw}};
inline const Choices<Schedule> kSchedules = {{"constant", Schedule::constant},
                                             {"inverse_sqrt", Schedule::inverse_sqrt},
                                             {"cosine", Schedule::cosine}};
inline const Choices<DataSource> kSources = {{"prepared", DataSource::prepared},
                                             {"synthetic", DataSource::synthetic},
                                             {"bytes", DataSource::bytes}};
inline const Choices<CorpusFormat> kFormats = {{"auto", CorpusFormat::auto_detect},
                                               {"text", CorpusFormat::text},
                                               {"jsonl", CorpusFormat::jsonl}};
inline const Choices<TokenizerKind> kTokenizers = {{"unigram", TokenizerKind::unigram},
                                                   {"bpe", TokenizerKind::bpe}};
inline const Choices<Device> kDevices = {{"cpu", Device::cpu}, {"cuda", Device::cuda}};
inline const Choices<Precision> kPrecisions = {{"fp32", Precision::fp32}, {"bf16", Precision::bf16}};
inline const Choices<AttentionKernel> kAttentionKernels = {{"reference", AttentionKernel::reference},
                                                           {"fused", AttentionKernel::fused}};

// From the router table (moe/router_table.cpp): the one place routers are named.
inline const Choices<RouterKind> kRouters = [] {
  Choices<RouterKind> c;
  for (const RouterInfo& r : router_table()) c.push_back({r.name, r.kind});
  return c;
}();
inline const Choices<EcGrouping> kGroupings = {{"auto", EcGrouping::automatic},
                                               {"contiguous", EcGrouping::contiguous},
                                               {"by_position", EcGrouping::by_position}};
inline const Choices<EvalRouting> kEvalRoutings = {{"groups", EvalRouting::groups},
                                                   {"threshold", EvalRouting::threshold}};
inline const Choices<SecondPolicy> kSecondPolicies = {{"random", SecondPolicy::random},
                                                      {"all", SecondPolicy::all}};
inline const Choices<ExpertKind> kExpertKinds = {{"glu", ExpertKind::glu}, {"ffn", ExpertKind::ffn}};

// V provides: field(key, T&), choice(key, E&, choices), section(key, fn).
template <class V>
void visit_config(V& v, Config& c) {
  v.field("seed", c.seed);
  v.choice("backend", c.backend, kDevices);
  v.field("threads", c.threads);
  v.choice("precision", c.precision, kPrecisions);
  v.choice("attention_kernel", c.attention_kernel, kAttentionKernels);
  v.section("run", [&] {
    v.field("dir", c.run.dir);
    v.field("log_every", c.run.log_every);
    v.field("progress", c.run.progress);
  });
  v.section("model", [&] {
    ModelConfig& m = c.model;
    v.choice("arch", m.arch, kArchs);
    v.field("vocab_size", m.vocab_size);
    v.field("d_model", m.d_model);
    v.field("n_layers", m.n_layers);
    v.field("n_heads", m.n_heads);
    v.field("d_ff", m.d_ff);
    v.field("max_seq", m.max_seq);
    v.choice("activation", m.activation, kActivations);
    v.choice("norm", m.norm, kNorms);
    v.field("norm_eps", m.norm_eps);
    v.choice("positions", m.positions, kPositions);
    v.field("tie_embeddings", m.tie_embeddings);
    v.field("init_std", m.init_std);
  });
  v.section("moe", [&] {
    MoeConfig& m = c.moe;
    v.field("num_experts", m.num_experts);
    v.choice("router", m.router, kRouters);
    v.field("every", m.every);
    v.field("group_size", m.group_size);
    v.field("capacity_factor", m.capacity_factor);
    v.field("eval_capacity_factor", m.eval_capacity_factor);
    v.field("top_k", m.top_k);
    v.choice("second_policy", m.second_policy, kSecondPolicies);
    v.field("aux_loss", m.aux_loss);
    v.field("w_importance", m.w_importance);
    v.field("w_load", m.w_load);
    v.field("z_loss", m.z_loss);
    v.field("jitter", m.jitter);
    v.field("device_routing", m.device_routing);
    v.section("expert_choice", [&] {
      v.field("capacity", m.ec_capacity);
      v.choice("grouping", m.ec_grouping, kGroupings);
      v.field("max_experts_per_token", m.max_experts_per_token);
      v.choice("eval_routing", m.eval_routing, kEvalRoutings);
      v.field("threshold_decay", m.threshold_decay);
    });
    v.field("expert_d_ff", m.expert_d_ff);
    v.choice("expert_kind", m.expert_kind, kExpertKinds);
  });
  v.section("optim", [&] {
    OptimConfig& o = c.optim;
    v.choice("name", o.kind, kOptimizers);
    v.field("lr", o.lr);
    v.field("beta1", o.beta1);
    v.field("beta2", o.beta2);
    v.field("eps", o.eps);
    v.field("weight_decay", o.weight_decay);
    v.field("grad_clip", o.grad_clip);
    v.choice("schedule", o.schedule, kSchedules);
    v.field("warmup_steps", o.warmup_steps);
    v.field("min_lr_ratio", o.min_lr_ratio);
  });
  v.section("data", [&] {
    DataConfig& d = c.data;
    v.choice("source", d.source, kSources);
    v.field("path", d.path);
    v.field("synthetic_tokens", d.synthetic_tokens);
    v.field("synthetic_branching", d.synthetic_branching);
    v.field("eval_fraction", d.eval_fraction);
    v.field("mask_prob", d.mask_prob);
    v.field("verify_checksums", d.verify_checksums);
  });
  v.section("prepare", [&] {
    PrepareConfig& p = c.prepare;
    v.field("input", p.input);
    v.choice("format", p.format, kFormats);
    v.choice("tokenizer", p.tokenizer, kTokenizers);
    v.field("tokenizer_model", p.tokenizer_model);
    v.field("val_fraction", p.val_fraction);
    v.field("test_fraction", p.test_fraction);
    v.field("max_shard_tokens", p.max_shard_tokens);
    v.field("character_coverage", p.character_coverage);
    v.field("tags", p.tags);
  });
  v.section("train", [&] {
    TrainConfig& t = c.train;
    v.field("steps", t.steps);
    v.field("batch_size", t.batch_size);
    v.field("seq_len", t.seq_len);
    v.field("label_smoothing", t.label_smoothing);
    v.field("eval_every", t.eval_every);
    v.field("eval_batches", t.eval_batches);
    v.field("grad_accum", t.grad_accum);
    v.field("sample_every", t.sample_every);
    v.field("sample_prompts", t.sample_prompts);
    v.field("sample_tokens", t.sample_tokens);
    v.field("logits_chunk_rows", t.logits_chunk_rows);
    v.field("skip_non_finite", t.skip_non_finite);
  });
  v.section("checkpoint", [&] {
    v.field("every", c.checkpoint.every);
    v.field("keep_last", c.checkpoint.keep_last);
  });
  v.section("parallel", [&] {
    v.field("expert_parallel", c.parallel.expert_parallel);
    v.field("step_timeout_s", c.parallel.step_timeout_s);
    v.field("bucket_mb", c.parallel.bucket_mb);
    v.field("zero", c.parallel.zero);
    v.field("check_replicas_every", c.parallel.check_replicas_every);
  });
}

}  // namespace sy
