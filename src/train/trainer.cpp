#include "train/trainer.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>

#include <nlohmann/json.hpp>

#include "checkpoint/model_io.h"
#include "core/errors.h"
#include "core/files.h"
#include "core/hardware.h"
#include "core/log.h"
#include "core/phases.h"
#include "core/process.h"
#include "core/watchdog.h"
#include "core/timer.h"
#include "optim/schedule.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/safetensors.h"
#include "core/sha256.h"
#include "train/faults.h"
#include "train/memory.h"
#include "train/run_dir.h"
#include "train/signals.h"

namespace sy {


// The mesh, with the collective timeout set first: NCCL waits poll against it from
// the communicator's first collective on.
static ProcessMesh make_mesh(const Config& cfg) {
  set_collective_timeout(cfg.parallel.step_timeout_s);
  Watchdog::get().set_limit(cfg.parallel.step_timeout_s);  // from here on, the config's limit
  return ProcessMesh::make(static_cast<int>(cfg.parallel.expert_parallel), cfg.moe.num_experts,
                           cfg.backend);
}

Trainer::Trainer(const Config& cfg, Ops& ops, const std::string& eval_split)
    : cfg_(cfg),
      ops_(ops),
      mesh_(make_mesh(cfg)),
      rank_(mesh_.rank) {
  // Sizes first: a config that cannot fit is refused before the first allocation.
  check_memory(cfg, mesh_.ep, ops.memory_capacity(), ops.device() == Device::cuda ? "GPU" : "machine");
  ops_.set_threads(static_cast<int>(cfg.threads));
  ops_.set_bf16_operands(cfg.precision == Precision::bf16);
  data_ = open_dataset(cfg.data, cfg.model.vocab_size, cfg.seed, eval_split);
  LoaderOptions lo;
  lo.batch = cfg.train.batch_size;
  lo.seq = cfg.train.seq_len;
  lo.seed = cfg.seed;
  lo.masked_lm = cfg.model.arch == Arch::encoder;
  lo.vocab = cfg.model.vocab_size;
  lo.mask_id = data_.mask_id;
  lo.mask_prob = cfg.data.mask_prob;
  lo.rank = mesh_.rank;
  lo.world = mesh_.world;
  lo.accum = cfg.train.grad_accum;
  train_data_ = std::make_unique<Loader>(*data_.train, lo, "the training split of " + data_.name);
  eval_data_ = std::make_unique<Loader>(*data_.eval, lo, "the " + eval_split + " split of " + data_.name);
  micro_.resize(static_cast<size_t>(cfg.train.grad_accum));
  count_.assign(1, 0.0);
  sums_.assign(3, 0.0);
  if (cfg.moe.enabled())
    moe_ = std::make_unique<MoeModel>(cfg.model, cfg.moe,
                                      ExpertShard{mesh_.ep_comm.get(), mesh_.ep_rank, mesh_.ep});
  model_ = std::make_unique<Transformer>(ops, cfg.model, cfg.train.label_smoothing, DType::f32,
                                         moe_ ? moe_->factory() : FfnFactory{});
  model_->set_logits_chunk(cfg.train.logits_chunk_rows);
  model_->set_fused_attention(cfg.attention_kernel == AttentionKernel::fused);
  model_->allocate(cfg.train.batch_size, cfg.train.seq_len);
  model_->init_params(cfg.seed);
  ParamStore& ps = model_->params();
  grad_sync_ = std::make_unique<GradSync>(ps, *mesh_.world_comm, *mesh_.dp_comm,
                                          static_cast<int64_t>(cfg.parallel.bucket_mb * 1e6),
                                          cfg.parallel.zero == 1);
  // Adam updates what this rank owns: every parameter whole, or (zero 1) its slices.
  std::vector<OptimParam> params;
  if (grad_sync_->sharded()) {
    for (const GradSync::Span& s : grad_sync_->owned())
      params.push_back({ps.values().view({s.size}, s.offset), ps.grads().view({s.size}, s.offset),
                        ps.spec(s.param).decay});
  } else {
    for (ParamId i = 0; i < ps.size(); ++i) params.push_back({ps.value(i), ps.grad(i), ps.spec(i).decay});
  }
  adam_ = std::make_unique<Adam>(ops, cfg.optim, std::move(params));
  model_->on_grads_ready([this](ParamId first, ParamId end) { grads_ready(first, end); });
}

void Trainer::grads_ready(ParamId first, ParamId end) {
  if (!sync_in_backward_) return;  // an earlier micro-batch: gradients still accumulate
  if (nan_in_backward_ && first == 0) {  // fault injection: before the first parameter is sent
    ops_.fill(model_->params().grads().view({1}), std::nan(""));
    nan_in_backward_ = false;
  }
  grad_sync_->ready(first, end);
}

void Trainer::check_replicas(int64_t step) {
  if (mesh_.world == 1) return;  // one copy of everything
  // A 63-bit FNV-1a hash of the bits of the dense weights and of this rank's
  // experts; equal on every rank of a group iff max(h) == min(h) = −max(−h).
  const ParamStore& ps = model_->params();
  std::vector<char> host(ps.values().bytes());
  ops_.to_host(host.data(), ps.values());
  uint64_t hash[2] = {1469598103934665603ull, 1469598103934665603ull};  // dense, experts
  const size_t width = dtype_size(ps.dtype());
  for (ParamId i = 0; i < ps.size(); ++i) {
    const ParamSpec& sp = ps.spec(i);
    uint64_t& h = hash[sp.expert ? 1 : 0];
    const char* at = host.data() + static_cast<size_t>(sp.offset) * width;
    for (size_t b = 0; b < static_cast<size_t>(sp.numel) * width; ++b)
      h = (h ^ static_cast<unsigned char>(at[b])) * 1099511628211ull;
  }
  auto same = [](Communicator& c, uint64_t h) {
    const int64_t v = static_cast<int64_t>(h >> 1);
    return c.all_reduce_max(v) == -c.all_reduce_max(-v);
  };
  const bool dense_same = same(*mesh_.world_comm, hash[0]);
  const bool experts_same = same(*mesh_.dp_comm, hash[1]);
  if (!dense_same || !experts_same)
    fatalf(ExitCode::internal,
           "after step {}: the replicas of the {} weights differ between ranks (rank {} of {}); "
           "the run cannot continue meaningfully: resume from the last checkpoint, and if it "
           "happens again suspect the hardware of the ranks involved",
           step, !dense_same ? "dense" : "expert", rank_, mesh_.world);
}

double Trainer::optimizer_bytes() const {
  return 2.0 * static_cast<double>(adam_->first_moments().bytes());
}

std::pair<Tensor, Tensor> Trainer::full_moments(Buffer& m_full, Buffer& v_full) {
  if (!grad_sync_->sharded()) return {adam_->first_moments(), adam_->second_moments()};
  // Each rank's slices into place in full-size buffers, then every bucket's
  // slices to every rank (the same all-gather as for the parameters).
  const ParamStore& ps = model_->params();
  const size_t bytes = static_cast<size_t>(ps.numel()) * dtype_size(ps.dtype());
  m_full = Buffer(ops_, bytes);
  v_full = Buffer(ops_, bytes);
  Tensor m = m_full.as(ps.dtype(), {ps.numel()}), v = v_full.as(ps.dtype(), {ps.numel()});
  int64_t at = 0;
  for (const GradSync::Span& s : grad_sync_->owned()) {
    ops_.copy(m.view({s.size}, s.offset), adam_->first_moments().view({s.size}, at));
    ops_.copy(v.view({s.size}, s.offset), adam_->second_moments().view({s.size}, at));
    at += s.size;
  }
  grad_sync_->gather_like_params(m);
  grad_sync_->gather_like_params(v);
  return {m, v};
}

double Trainer::flops_per_token() const {
  const double moe_delta = moe_ ? 6.0 * moe_->active_params_delta() : 0.0;
  return cfg_.model.train_flops_per_token(cfg_.train.seq_len) + moe_delta;
}

void Trainer::set_route_context(int64_t step, bool training, int64_t first_row, double aux_grad_scale) {
  if (!moe_) return;
  RouteContext c;
  c.seed = cfg_.seed;
  c.step = step;
  c.training = training;
  c.batch = cfg_.train.batch_size;
  c.seq = cfg_.train.seq_len;
  // Global index of this micro-batch's first token (keys gshard's random draws).
  c.first_token = (step * train_data_->global_batch() + first_row) * cfg_.train.seq_len;
  moe_->begin_micro_batch(c, aux_grad_scale);
}

StepStats Trainer::train_step(int64_t step) {
  maybe_inject_fault(rank_, step);
  Timer step_timer;
  ExchangeTotals traffic;
  const int64_t accum = cfg_.train.grad_accum;
  // This rank's micro-batches, and the number of targets in the whole global batch:
  // the loss is their mean, so each target's gradient is scaled by 1/count.
  double local_targets = 0;
  for (int64_t m = 0; m < accum; ++m) {
    micro_[m] = train_data_->next();
    for (int32_t t : micro_[m].targets) local_targets += t >= 0;
  }
  std::vector<double>& count = count_;
  count[0] = local_targets;
  mesh_.world_comm->all_reduce_sum(count);
  const double replicas = static_cast<double>(mesh_.world * accum);

  ParamStore& ps = model_->params();
  ps.zero_grads();
  std::vector<double>& sums = sums_;  // loss, nll, aux
  std::fill(sums.begin(), sums.end(), 0.0);
  nan_in_backward_ = injected(rank_, step, "nan");
  for (int64_t m = 0; m < accum; ++m) {
    const Batch& b = micro_[m];
    set_route_context(step, true, b.first_row, 1.0 / replicas);  // aux: mean over micro-batches
    const double grad_scale = count[0] > 0 ? 1.0 / count[0] : 0.0;
    const LossSums l = model_->forward(b.ids.data(), b.targets.data(), grad_scale);
    sums[0] += l.loss;
    sums[1] += l.nll;
    if (moe_) sums[2] += moe_->aux_loss();
    // The last micro-batch's backward starts each bucket's reduction as soon as its
    // gradients are final (the earlier ones only accumulate).
    sync_in_backward_ = m + 1 == accum;
    if (sync_in_backward_) grad_sync_->begin();
    model_->backward(grad_scale);
    sync_in_backward_ = false;
    if (moe_) traffic.add(moe_->exchange());
  }
  if (moe_) moe_->finish_step(*mesh_.world_comm);  // expert-choice thresholds: once per step, every rank alike
  grad_sync_->finish();
  mesh_.world_comm->all_reduce_sum(sums);
  StepStats s;
  s.targets = static_cast<int64_t>(count[0]);
  s.aux = sums[2] / replicas;
  s.loss = (count[0] > 0 ? sums[0] / count[0] : 0.0) + s.aux;
  s.nll = count[0] > 0 ? sums[1] / count[0] : 0.0;
  s.grad_norm = std::sqrt(grad_sync_->global_norm_squared(ops_));
  s.grad_sync_seconds = grad_sync_->comm_seconds();
  s.lr = learning_rate(cfg_.optim, step, cfg_.train.steps);
  // Loss and gradient norm are reduced over every rank, so all ranks decide alike.
  if (!std::isfinite(s.loss) || !std::isfinite(s.grad_norm)) {
    if (!cfg_.train.skip_non_finite)
      fatalf(ExitCode::non_finite, "step {}: non-finite loss ({}) or gradient norm ({}); "
             "try a lower optim.lr or stronger optim.grad_clip, or set train.skip_non_finite",
             step, s.loss, s.grad_norm);
    log_warn("step {}: non-finite loss ({}) or gradient norm ({}): step skipped", step, s.loss,
             s.grad_norm);
    s.skipped = true;
    ++skipped_steps_;
  } else {
    PhaseScope phase(Phase::optimizer);
    adam_->step(s.lr, clip_factor(s.grad_norm, cfg_.optim.grad_clip));
    if (grad_sync_->sharded()) grad_sync_->gather_params();  // every rank's updated slices
  }
  if (injected(rank_, step, "drift")) ops_.scale(ps.values().view({1}), 1.0 + 1e-6);
  s.exchange = traffic;
  s.seconds = step_timer.seconds();
  return s;
}

std::vector<std::string> Trainer::eval_rules() const {
  const bool both_rules = moe_ && moe_->has_two_eval_rules() && threshold_rule_available_;
  if (both_rules) return {"groups", "threshold"};
  return {"eval"};
}

EvalStats Trainer::evaluate(int64_t max_batches) {
  if (max_batches < 0) max_batches = cfg_.train.eval_batches;
  const int64_t all = eval_data_->eval_batches();
  const int64_t n = max_batches == 0 ? all : std::min(max_batches, all);
  if (eval_rules().size() == 1) {
    eval_rule_ = "eval";
    return evaluate_once(n);
  }
  // Expert choice in a decoder: the configured rule, plus the other one, because
  // the gap between them measures how much routing peeks at future tokens.
  auto with_rule = [&](EvalRouting r) {
    moe_->set_eval_routing(r);
    eval_rule_ = r == EvalRouting::groups ? "groups" : "threshold";
    return evaluate_once(n);
  };
  const EvalStats groups = with_rule(EvalRouting::groups);
  const EvalStats threshold = with_rule(EvalRouting::threshold);
  moe_->set_eval_routing(cfg_.moe.eval_routing);
  EvalStats e = cfg_.moe.eval_routing == EvalRouting::groups ? groups : threshold;
  e.ppl_groups = groups.ppl;
  e.ppl_threshold = threshold.ppl;
  e.routing.insert(groups.routing.begin(), groups.routing.end());
  e.routing.insert(threshold.routing.begin(), threshold.routing.end());
  return e;
}

void Trainer::save_eval_batches(const std::string& path, int64_t n, bool gradients) {
  SY_CHECK(mesh_.world == 1, "save_eval_batches runs on one process");
  const int64_t all = eval_data_->eval_batches();
  n = n <= 0 ? all : std::min(n, all);
  const int64_t B = cfg_.train.batch_size, T = cfg_.train.seq_len;
  std::vector<int32_t> ids, targets;
  for (int64_t i = 0; i < n; ++i) {
    const Batch& b = eval_data_->eval_batch(i);
    ids.insert(ids.end(), b.ids.begin(), b.ids.end());
    targets.insert(targets.end(), b.targets.begin(), b.targets.end());
  }
  std::map<std::string, SafeTensor> tensors;
  tensors["ids"] = {"I32", {n, B, T}, ids.data(), ids.size() * sizeof(int32_t)};
  tensors["targets"] = {"I32", {n, B, T}, targets.data(), targets.size() * sizeof(int32_t)};
  std::vector<float> grads;
  if (gradients) {
    const Batch& b = eval_data_->eval_batch(0);
    int64_t count = 0;
    for (int32_t t : b.targets) count += t >= 0;
    ParamStore& ps = model_->params();
    ps.zero_grads();
    set_route_context(0, true, 0, 1.0);
    const double grad_scale = count > 0 ? 1.0 / static_cast<double>(count) : 0.0;
    model_->forward(b.ids.data(), b.targets.data(), grad_scale);
    model_->backward(grad_scale);
    grads.resize(static_cast<size_t>(ps.numel()));
    ops_.to_host(grads.data(), ps.grads());
    for (ParamId i = 0; i < ps.size(); ++i) {
      const ParamSpec& sp = ps.spec(i);
      tensors["grad." + sp.name] = {"F32", sp.shape, grads.data() + sp.offset,
                                    static_cast<size_t>(sp.numel) * sizeof(float)};
    }
  }
  write_safetensors(path, tensors, {{"format", "switchyard-batches"}, {"split", data_.eval_split}});
}

EvalStats Trainer::evaluate_once(int64_t n) {
  std::vector<double> sums = {0.0, 0.0};  // nll, targets
  // MoE: per-layer counts (MoeModel::add_routing_counts), sized before any batch so
  // every rank reduces the same length.
  std::vector<double> routing(moe_ ? moe_->layers().size() * static_cast<size_t>(moe_->routing_width()) : 0, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const Batch& b = eval_data_->eval_batch(i);
    set_route_context(0, false, 0, 0.0);
    const LossSums s = model_->forward(b.ids.data(), b.targets.data());
    sums[0] += s.nll;
    sums[1] += static_cast<double>(s.count);
    if (!moe_) continue;
    moe_->add_routing_counts(routing);
    if (trace_) trace_->record(eval_rule_, b, moe_->layers());
  }
  mesh_.world_comm->all_reduce_sum(sums);
  if (!routing.empty()) mesh_.world_comm->all_reduce_sum(routing);
  const double nll = sums[0];
  const int64_t count = static_cast<int64_t>(sums[1]);
  EvalStats e;
  e.targets = count;
  e.nll = count ? nll / static_cast<double>(count) : 0.0;
  e.ppl = std::exp(e.nll);
  e.words = static_cast<double>(count) * data_.eval_words_per_token;
  e.word_ppl = e.words > 0 ? std::exp(nll / e.words) : 0.0;
  if (moe_) e.routing[eval_rule_] = moe_->routing_from_counts(routing);
  return e;
}

void Trainer::log_step(int64_t step, const StepStats& s, double tokens_per_s,
                       const EvalStats* eval) {
  nlohmann::json j;
  j["step"] = step;
  if (skipped_steps_ > 0) j["skipped_steps"] = skipped_steps_;
  j["loss"] = s.loss;
  j["nll"] = s.nll;
  j["ppl"] = std::exp(s.nll);
  j["lr"] = s.lr;
  j["grad_norm"] = s.grad_norm;
  j["tokens_per_s"] = tokens_per_s;
  j["gflops"] = tokens_per_s * flops_per_token() * 1e-9;
  if (s.aux != 0) j["aux_loss"] = s.aux;
  // Gradient reduction: bytes this rank sends (and receives) per step, Adam's state
  // it holds, and (collective) the mean time ranks spent in the reductions that
  // computing did not hide (GradSync::comm_seconds).
  j["grad_sync_bytes_per_rank"] = grad_sync_->bytes_per_step();
  j["optimizer_bytes_per_rank"] = optimizer_bytes();
  if (mesh_.world > 1) {
    std::vector<double> w = {s.grad_sync_seconds, s.seconds};
    mesh_.world_comm->all_reduce_sum(w);
    j["grad_sync_seconds_per_rank"] = w[0] / mesh_.world;
    j["grad_sync_share_of_step"] = w[1] > 0 ? w[0] / w[1] : 0.0;
  }
  if (mesh_.ep > 1) {
    // Collective: every rank logs the same steps. Sums over the world, and the
    // per-rank load (rows each rank's experts processed) as max / mean.
    std::vector<double> v = {s.exchange.bytes_sent, s.exchange.bytes_received, s.exchange.seconds,
                             s.seconds, s.exchange.rows_received};
    mesh_.world_comm->all_reduce_sum(v);
    const double max_rows = static_cast<double>(
        mesh_.world_comm->all_reduce_max(static_cast<int64_t>(s.exchange.rows_received)));
    const double mean_rows = v[4] / mesh_.world;
    j["a2a_bytes_sent"] = v[0];  // all ranks, forward + backward
    j["a2a_bytes_received"] = v[1];
    j["a2a_bytes_per_rank"] = v[0] / mesh_.world;
    j["a2a_seconds_per_rank"] = v[2] / mesh_.world;
    j["a2a_share_of_step"] = v[3] > 0 ? v[2] / v[3] : 0.0;
    j["rank_load_max_over_mean"] = mean_rows > 0 ? max_rows / mean_rows : 0.0;
  }
  if (moe_) j["moe"] = moe_->metrics();
  if (eval) {
    j["val_nll"] = eval->nll;
    if (eval->ppl_groups > 0) {
      j["val_ppl_groups"] = eval->ppl_groups;
      j["val_ppl_threshold"] = eval->ppl_threshold;
    }
    j["val_ppl"] = eval->ppl;
    if (eval->word_ppl > 0) j["val_word_ppl"] = eval->word_ppl;
  }
  metrics_.write(j);
}

RouterState Trainer::router_state() const { return moe_ ? moe_->router_state() : RouterState{}; }

int Trainer::set_router_state(const RouterState& state) { return moe_ ? moe_->set_router_state(state) : 0; }

void Trainer::save_weights() {
  // One copy of every tensor: the dense weights from rank 0, each expert from the
  // first data-parallel replica that holds it; the router state (expert-choice
  // thresholds, equal on every rank) with rank 0's file. weights.json, with the
  // checksums, is written last.
  const std::map<std::string, std::string> meta = {{"format", "switchyard"}};
  if (mesh_.ep == 1) {
    if (rank_ == 0) save_params(cfg_.run.dir + "/model.safetensors", model_->params(), meta, router_state());
  } else if (mesh_.dp_rank == 0) {
    save_params_sharded(cfg_.run.dir, mesh_.ep_rank, model_->params(), meta, router_state());
  }
  mesh_.world_comm->barrier();
  if (rank_ == 0) {
    if (mesh_.ep > 1) write_shard_index(cfg_.run.dir);
    write_weights_manifest(cfg_.run.dir);
  }
  mesh_.world_comm->barrier();
  log_info("final weights in {}", cfg_.run.dir);
}

nlohmann::json Trainer::fingerprint() const {
  nlohmann::json f;
  f["train.seq_len"] = cfg_.train.seq_len;
  f["model.vocab_size"] = cfg_.model.vocab_size;
  f["global_batch_rows"] = train_data_->global_batch();
  f["model.arch"] = cfg_.model.arch == Arch::decoder ? "decoder" : "encoder";
  f["model.shape"] = fmt::format("{}x{}x{}h ff{}", cfg_.model.n_layers, cfg_.model.d_model,
                                 cfg_.model.n_heads, cfg_.model.d_ff);
  f["moe.experts"] = cfg_.moe.num_experts;
  f["moe.router"] = cfg_.moe.enabled() ? router_name(cfg_.moe.router) : "none";
  if (cfg_.data.source == DataSource::prepared)
    f["data.manifest"] = sha256_file(cfg_.data.path + "/manifest.json");
  else
    f["data.manifest"] = fmt::format("{} {} {} seed {}",
                                     cfg_.data.source == DataSource::synthetic ? "synthetic" : "bytes",
                                     cfg_.data.path, cfg_.data.synthetic_tokens, cfg_.seed);
  return f;
}

std::string Trainer::save_checkpoint_now(int64_t steps_done) {
  CheckpointState st;
  st.step = steps_done;
  st.tokens_seen = steps_done * train_data_->global_batch() * cfg_.train.seq_len;
  st.adam_steps = adam_->steps_taken();
  st.skipped_steps = skipped_steps_;
  st.loader_consumed = train_data_->state().consumed;
  st.router_state = router_state();
  st.config_yaml = to_yaml(cfg_);
  st.fingerprint = fingerprint();
  st.world = mesh_.world;
  st.ep = mesh_.ep;
  ShardPlan plan;
  if (mesh_.ep == 1) plan = rank_ == 0 ? ShardPlan{0, true} : ShardPlan{-1, false};
  else if (mesh_.dp_rank == 0) plan = ShardPlan{mesh_.ep_rank, mesh_.ep_rank == 0};
  // Logical tensors whatever the layout: with parallel.zero 1 the moments are
  // gathered for the save (transient full-size buffers), so any layout and either
  // zero mode can resume from it.
  Buffer m_full, v_full;
  const auto [m, v] = full_moments(m_full, v_full);
  const std::string dir =
      save_checkpoint(cfg_.run.dir, st, model_->params(), m, v, plan, *mesh_.world_comm,
                      static_cast<int>(cfg_.checkpoint.keep_last), resumed_from_);
  log_info("checkpoint: {}", dir);
  return dir;
}

int64_t Trainer::restore_checkpoint(const std::string& dir) {
  const CheckpointState st = read_checkpoint_state(dir);
  // The config keys that define the model and the data, then what the config does
  // not say (the global batch, the prepared data's manifest).
  std::vector<std::string> changed = resume_changes(st.config_yaml, cfg_);
  for (const std::string& c : fingerprint_changes(st.fingerprint, fingerprint()))
    if (c.rfind("global_batch_rows", 0) == 0 || c.rfind("data.manifest", 0) == 0) changed.push_back(c);
  if (!changed.empty()) {
    std::string msg = "cannot resume from '" + dir + "': the run changed in ways that make resuming meaningless:";
    for (const std::string& c : changed) msg += "\n  " + c;
    throw Error(ExitCode::bad_input, msg + "\n(start a new run directory, or restore these settings)");
  }
  if (!grad_sync_->sharded()) {
    load_checkpoint_tensors(dir, model_->params(), adam_->first_moments(), adam_->second_moments(),
                            mesh_.ep > 1);
  } else {  // the whole moments, then this rank's slices of them
    const ParamStore& ps = model_->params();
    const size_t bytes = static_cast<size_t>(ps.numel()) * dtype_size(ps.dtype());
    Buffer m_full(ops_, bytes), v_full(ops_, bytes);
    const Tensor m = m_full.as(ps.dtype(), {ps.numel()}), v = v_full.as(ps.dtype(), {ps.numel()});
    load_checkpoint_tensors(dir, model_->params(), m, v, mesh_.ep > 1);
    int64_t at = 0;
    for (const GradSync::Span& s : grad_sync_->owned()) {
      ops_.copy(adam_->first_moments().view({s.size}, at), m.view({s.size}, s.offset));
      ops_.copy(adam_->second_moments().view({s.size}, at), v.view({s.size}, s.offset));
      at += s.size;
    }
  }
  adam_->set_steps_taken(st.adam_steps);
  skipped_steps_ = st.skipped_steps;
  train_data_->restore(LoaderState{st.loader_consumed, 0});
  set_router_state(st.router_state);
  resumed_from_ = dir;
  log_info("resumed from {} (step {}, saved on {} rank(s) with expert parallelism {})", dir, st.step,
           st.world, st.ep);
  return st.step;
}

void Trainer::open_metrics(int64_t first_step) {
  if (rank_ == 0) metrics_ = MetricsWriter(cfg_.run.dir + "/metrics.jsonl", first_step > 0 ? first_step : -1);
}

// Rank 0 checks the run directory before anything in it changes: it can be created
// and written, no other trainer holds it, and it holds no other run unless the user
// resumes it or asked for a fresh start. Throws Error(bad_input) saying which.
void Trainer::claim_run_dir(bool resuming, bool fresh) {
  namespace fs = std::filesystem;
  const std::string& dir = cfg_.run.dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw Error(ExitCode::bad_input, "run.dir: cannot create '" + dir + "': " +
                                         (ec ? ec.message() : std::string("a file is in the way")));
  run_lock_ = DirLock::acquire(dir, "training");
  const std::vector<std::string> found = existing_run_files(dir);
  if (!resuming && !fresh && !found.empty())
    throw Error(ExitCode::bad_input,
                fmt::format("run.dir '{}' already holds a run ({}); nothing was changed. Continue it "
                            "with --resume auto, start over with --fresh (its files are moved to "
                            "{}/replaced-<time>/), or set another run.dir",
                            dir, fmt::join(found, ", "), dir));
}

TrainResult Trainer::run(const std::string& resume, bool fresh) {
  const TrainConfig& t = cfg_.train;
  if (fresh && !resume.empty())
    throw Error(ExitCode::bad_input, "--fresh and --resume exclude each other: --fresh starts over, "
                                     "--resume continues");
  TrainResult r;
  auto stopped_before_start = [&] {
    // A stop (SIGTERM/SIGINT) that came before the first step: every rank agrees at
    // the same point and leaves with exit 3, having written nothing.
    if (mesh_.world_comm->all_reduce_max(stop_requested() ? 1 : 0) == 0) return false;
    log_warn("stopped by a signal before the first step: nothing written (exit code 3)");
    r.exit_code = static_cast<int>(ExitCode::preempted);
    return true;
  };
  if (stopped_before_start()) return r;  // before anything exists, even run.dir
  if (rank_ == 0) claim_run_dir(!resume.empty(), fresh);
  mesh_.world_comm->barrier();
  if (stopped_before_start()) return r;
  // Every check that can refuse the run comes before anything is written.
  if (cfg_.train.sample_every > 0) {  // (its prompts, on every rank)
    if (mesh_.ep > 1) log_warn("train.sample_every: no samples with expert parallelism (no rank holds every expert)");
    else sampler_ = std::make_unique<TrainingSampler>(cfg_, ops_, rank_ == 0);
  }
  int64_t first_step = 0;
  if (!resume.empty()) {
    Watchdog::get().phase("the restore");
    maybe_stall(rank_, "restore");
    const ResumePoint from = resolve_resume(cfg_.run.dir, resume);
    if (!from.note.empty()) log_warn("resume: {}", from.note);
    if (!from.dir.empty()) {
      first_step = restore_checkpoint(from.dir);  // (reads and verifies the checkpoint once)
    } else {
      log_info("resume auto: no checkpoint in {}/checkpoints yet, starting fresh", cfg_.run.dir);
    }
  }
  if (stopped_before_start()) return r;
  if (rank_ == 0) {
    if (fresh && !existing_run_files(cfg_.run.dir).empty())
      log_warn("--fresh: the previous run's files are now in {}", move_run_aside(cfg_.run.dir));
    write_text_file(cfg_.run.dir + "/config.yaml", to_yaml(cfg_));
    record_hardware(cfg_.run.dir, first_step, ops_.name(), mesh_.world);
  }
  add_log_file(cfg_.run.dir + "/log.txt");
  open_metrics(first_step);

  const ParamStore& ps = model_->params();
  log_info("switchyard: {} {} · {} parameters · {:.1f} MB activations · backend {}{}{}",
           cfg_.model.arch == Arch::decoder ? "decoder" : "encoder",
           fmt::format("{}L×{}d×{}h", cfg_.model.n_layers, cfg_.model.d_model, cfg_.model.n_heads),
           ps.numel(), model_->activation_bytes() / 1e6, ops_.name(),
           cfg_.precision == Precision::bf16 ? " · precision bf16 (bf16 operands, fp32 accumulation)" : "",
           cfg_.attention_kernel == AttentionKernel::fused ? " · fused attention" : "");
  log_info("data: {}: {} training tokens ({} windows), {} in the {} split{}", data_.name,
           data_.train->size(), train_data_->windows(), data_.eval->size(), data_.eval_split,
           data_.entropy_bits >= 0
               ? fmt::format(" (source entropy ≈ {:.3f} nats/token)", data_.entropy_bits * std::log(2.0))
               : "");
  log_info("run directory: {}", cfg_.run.dir);
  log_info("ranks: {} ({} data-parallel × {} expert-parallel), {} micro-batch(es) of {} per rank "
           "per step", mesh_.world, mesh_.dp, mesh_.ep, cfg_.train.grad_accum, cfg_.train.batch_size);
  if (moe_) moe_->log_setup(mesh_.ep);

  const bool tty = cfg_.run.progress && isatty(STDERR_FILENO);
  Timer total, window;
  int64_t window_tokens = 0;
  double window_skip_s = 0;  // time spent on samples, not training
  r.steps = first_step;
  for (int64_t step = first_step; step < t.steps; ++step) {
    Watchdog::get().phase(fmt::format("step {}", step));  // with its evaluation, logging, checkpoint
    const StepStats s = train_step(step);
    if (cfg_.parallel.check_replicas_every > 0 && (step + 1) % cfg_.parallel.check_replicas_every == 0)
      check_replicas(step);
    window_tokens += train_data_->global_batch() * t.seq_len;
    const bool last = step + 1 == t.steps;
    const bool do_eval = last || (t.eval_every > 0 && (step + 1) % t.eval_every == 0);
    const bool do_log = do_eval || step % cfg_.run.log_every == 0;
    EvalStats e;
    if (do_eval) e = evaluate();
    if (sampler_ && (last || (step + 1) % t.sample_every == 0)) {
      Timer sampling;
      sampler_->sample(step + 1, model_->params(), router_state());
      window_skip_s += sampling.seconds();
    }
    if (do_log) {
      const double tps = window_tokens / std::max(window.seconds() - window_skip_s, 1e-9);
      log_step(step, s, tps, do_eval ? &e : nullptr);
      const double eta = (t.steps - step - 1) * (total.seconds() / (step + 1));
      const std::string line =
          fmt::format("step {:>6}/{} | loss {:.4f} | nll {:.4f} | lr {:.2e} | |g| {:.3f} | {:.0f} tok/s "
                      "| ETA {:.0f}s{}",
                      step + 1, t.steps, s.loss, s.nll, s.lr, s.grad_norm, tps, eta,
                      do_eval ? fmt::format(" | val ppl {:.3f}", e.ppl) : "");
      if (tty) {  // a live line on the terminal; the log file still gets every line
        fmt::print(stderr, "\r{}\033[K{}", line, do_eval ? "\n" : "");
        log_debug("{}", line);
      } else {
        log_info("{}", line);
      }
      r.tokens_per_s = tps;
      window.reset();
      window_tokens = 0;
      window_skip_s = 0;
    }
    r.last = s;
    if (do_eval) r.eval = e;
    r.steps = step + 1;
    // A stop signal on any rank stops every rank, at the same step boundary.
    const bool stop = mesh_.world_comm->all_reduce_max(stop_requested() ? 1 : 0) > 0;
    const bool periodic = cfg_.checkpoint.every > 0 && (step + 1) % cfg_.checkpoint.every == 0;
    if (stop || periodic || last) save_checkpoint_now(step + 1);
    if (stop) {
      log_warn("stopped by a signal after step {}: checkpoint saved; resume with --resume auto "
               "(exit code 3)", step + 1);
      r.exit_code = static_cast<int>(ExitCode::preempted);
      return r;
    }
  }
  log_info("done: {} steps in {:.1f}s; validation nll {:.4f}, perplexity {:.3f}{}", r.steps,
           total.seconds(), r.eval.nll, r.eval.ppl,
           r.eval.word_ppl > 0 ? fmt::format(", per-word perplexity {:.2f}", r.eval.word_ppl) : "");
  Watchdog::get().phase("the final save");
  maybe_stall(rank_, "final_save");
  save_weights();
  return r;
}

}  // namespace sy
