#include "train/bench.h"

#include <benchmark/benchmark.h>

#include <unistd.h>

#include <map>
#include <memory>

#include "core/log.h"
#include "core/phases.h"
#include "core/timer.h"
#include "core/rng.h"
#include "model/glu_ffn.h"
#include "infer/generator.h"
#include "train/trainer.h"

namespace sy {
namespace {

// Keeps each benchmark's counters for the summary while printing as usual.
class CapturingReporter : public benchmark::ConsoleReporter {
 public:
  CapturingReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_Defaults : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (r.run_type == Run::RT_Iteration || r.aggregate_name == "median") {
        for (const auto& [name, c] : r.counters) results[r.run_name.function_name][name] = c.value;
        results[r.run_name.function_name]["ms"] = r.GetAdjustedRealTime() *
                                                  (r.time_unit == benchmark::kMillisecond ? 1.0 : 1e3);
      }
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, std::map<std::string, double>> results;
};

void bench_sgemm(benchmark::State& state, Ops& ops, int64_t n) {
  const Ops::Fp32Operands fp32(ops);  // the machine's fp32 rate, whatever precision the config runs
  Arena arena(ops);
  Tensor a = arena.make(DType::f32, {n, n}), b = arena.make(DType::f32, {n, n}),
         c = arena.make(DType::f32, {n, n});
  ops.fill(a, 0.5);
  ops.fill(b, 0.25);
  for (auto _ : state) {
    ops.gemm(false, false, n, n, n, 1.0, a, b, 0.0, c);
    ops.synchronize();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bench_train_step(benchmark::State& state, Trainer& trainer) {
  const Config& c = trainer.config();
  const double tokens = static_cast<double>(c.train.batch_size * c.train.seq_len);
  int64_t step = 0;
  trainer.train_step(step++);  // first step: warm caches outside the timing
  for (auto _ : state) {
    trainer.train_step(step++);
    trainer.model().params().ops().synchronize();
  }
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
  // Everything a training step needs is allocated by now and stays (decoding comes
  // later; the sgemm benchmark's buffers are gone).
  state.counters["peak_GiB"] = static_cast<double>(trainer.model().params().ops().bytes_in_use()) / (1ull << 30);
  state.counters["GFLOP/s"] = benchmark::Counter(tokens * trainer.flops_per_token() * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// One MoE layer (forward + backward) against a dense GLU FFN whose hidden size
// gives it the same expert FLOPs (the MoE's mean experts per token × expert
// hidden size): the difference is what routing, dispatch and combine cost.
struct MoeLayerBench {
  std::unique_ptr<Ops> ops;
  ParamStore params;
  LayerEnv env;
  Arena arena;
  MoeRuntime runtime;
  std::unique_ptr<MoeLayer> moe;
  std::unique_ptr<GluFfn> dense;
  BackwardScratch scratch;
  Tensor x, out, dout, dx;
  int64_t N, C, dense_hidden = 0;

  MoeLayerBench(const Config& cfg)
      : ops(make_ops(cfg.backend)), params(*ops, DType::f32), env{*ops, params, DType::f32}, arena(*ops) {
    ops->set_threads(static_cast<int>(cfg.threads));
    N = cfg.train.batch_size * cfg.train.seq_len;
    C = cfg.model.d_model;
    moe = std::make_unique<MoeLayer>(env, "moe", cfg.model, cfg.moe, 1, runtime);
    params.allocate();
    params.initialize(cfg.seed);
    moe->allocate(arena, N);
    runtime.ctx = RouteContext{cfg.seed, 0, true, cfg.train.batch_size, cfg.train.seq_len, 0};
    x = arena.make(DType::f32, {N, C});
    out = arena.make(DType::f32, {N, C});
    dout = arena.make(DType::f32, {N, C});
    dx = arena.make(DType::f32, {N, C});
    ops->fill(x, 0.1);
    ops->fill(dout, 0.01);
    std::vector<float> xs(static_cast<size_t>(N * C));
    const RngStream r{cfg.seed, 1};
    for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>(r.normal(i));
    ops->from_host(x, xs.data());
    moe->forward(x, out);
    const double per_token = static_cast<double>(moe->plan().slots()) / static_cast<double>(N);
    const int64_t H = cfg.moe.expert_d_ff > 0 ? cfg.moe.expert_d_ff : cfg.model.d_ff;
    dense_hidden = std::max<int64_t>(1, std::llround(per_token * static_cast<double>(H)));
  }
};

void bench_moe_layer(benchmark::State& state, MoeLayerBench& b) {
  BackwardScratch unused;
  for (auto _ : state) {
    b.moe->forward(b.x, b.out);
    b.moe->backward(b.dout, b.dx, unused);
    b.ops->synchronize();
  }
  state.counters["experts/token"] = static_cast<double>(b.moe->plan().slots()) / b.N;
}

void bench_dense_same_flops(benchmark::State& state, const Config& cfg, int64_t hidden) {
  auto ops = make_ops(cfg.backend);
  ops->set_threads(static_cast<int>(cfg.threads));
  ParamStore params(*ops, DType::f32);
  LayerEnv env{*ops, params, DType::f32};
  const int64_t N = cfg.train.batch_size * cfg.train.seq_len, C = cfg.model.d_model;
  GluFfn ffn(env, "dense", C, hidden, Activation::gelu, 0.02, 0.02);
  params.allocate();
  params.initialize(cfg.seed);
  Arena arena(*ops);
  ffn.allocate(arena, N);
  BackwardScratch s;
  s.dhid = arena.make(DType::f32, {N, hidden});
  s.dag = arena.make(DType::f32, {N, 2 * hidden});
  Tensor x = arena.make(DType::f32, {N, C}), out = arena.make(DType::f32, {N, C}),
         dout = arena.make(DType::f32, {N, C}), dx = arena.make(DType::f32, {N, C});
  ops->fill(x, 0.1);
  ops->fill(dout, 0.01);
  for (auto _ : state) {
    ffn.forward(x, out);
    ffn.backward(dout, dx, s);
    ops->synchronize();
  }
  state.counters["hidden"] = static_cast<double>(hidden);
}

// One attention core (forward + backward) at the training shape, reference
// (batched products over the [T, T] probabilities) or fused. FLOPs as flash-attention
// papers count them: 4·B·NH·T²·D forward (q·kᵀ and p·v), 2.5× that backward, half of
// it all when causal (masked tiles are not work).
void bench_attention(benchmark::State& state, const Config& cfg, bool fused) {
  auto ops = make_ops(cfg.backend);
  ops->set_threads(static_cast<int>(cfg.threads));
  ops->set_bf16_operands(cfg.precision == Precision::bf16);
  const int64_t B = cfg.train.batch_size, T = cfg.train.seq_len, NH = cfg.model.n_heads,
                C = cfg.model.d_model, D = C / NH;
  const bool causal = cfg.model.arch == Arch::decoder;
  Arena arena(*ops);
  Tensor qkv = arena.make(DType::f32, {B, T, 3 * C}), out = arena.make(DType::f32, {B, T, C}),
         dout = arena.make(DType::f32, {B, T, C}), dqkv = arena.make(DType::f32, {B, T, 3 * C});
  std::vector<float> xs(static_cast<size_t>(B * T * 3 * C));
  const RngStream r{cfg.seed, 2};
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>(r.normal(i));
  ops->from_host(qkv, xs.data());
  ops->fill(dout, 0.01);
  Tensor lse, delta;
  AttentionCache c;
  if (fused) {
    lse = arena.make(DType::f32, {B, NH, T});
    delta = arena.make(DType::f32, {B, NH, T});
  } else {
    for (Tensor* t : {&c.q, &c.k, &c.v, &c.out_heads, &c.dq, &c.dk, &c.dv}) *t = arena.make(DType::f32, {B, NH, T, D});
    c.probs = arena.make(DType::f32, {B, NH, T, T});
    c.dprobs = arena.make(DType::f32, {B, NH, T, T});
  }
  for (auto _ : state) {
    if (fused) {
      ops->attention_fused_forward(out, lse, qkv, NH, causal);
      ops->attention_fused_backward(dqkv, delta, dout, qkv, out, lse, NH, causal);
    } else {
      ops->attention_forward(out, c, qkv, NH, causal);
      ops->attention_backward(dqkv, c, dout, NH, causal);
    }
    ops->synchronize();
  }
  const double flops = 3.5 * 4.0 * double(B * NH) * double(T) * double(T) * double(D) * (causal ? 0.5 : 1.0);
  state.counters["TFLOP/s"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GiB"] = static_cast<double>(ops->peak_bytes()) / (1ull << 30);
}

// Where the step's time goes: a few more steps with every phase scope
// synchronising the device (slightly slower than the timed steps above, so the
// shares are reported, with the profiled step's own time).
void print_step_breakdown(Trainer& trainer, int64_t first_step, int steps) {
  Ops& ops = trainer.model().params().ops();
  trainer.train_step(first_step++);  // warm, in case the benchmarks above were filtered out
  set_phase_profiling([&ops] { ops.synchronize(); });
  const uint64_t moe_reads = trainer.moe() ? trainer.moe()->host_reads() : 0;
  Timer timer;
  for (int i = 0; i < steps; ++i) trainer.train_step(first_step + i);
  ops.synchronize();
  const double total = timer.seconds() / steps;
  const PhaseTotals t = phase_totals();
  set_phase_profiling(nullptr);
  fmt::print("\nstep breakdown ({} profiled steps, {:.1f} ms each):\n", steps, 1e3 * total);
  double accounted = 0;
  for (size_t p = 0; p < t.seconds.size(); ++p) {
    const double s = t.seconds[p] / steps;
    accounted += s;
    fmt::print("  {:<42} {:9.2f} ms  {:5.1f}%\n", phase_name(static_cast<Phase>(p)), 1e3 * s,
               100.0 * s / total);
  }
  fmt::print("  {:<42} {:9.2f} ms  {:5.1f}%\n", "other (dense FFN, norms, embedding, loss)",
             1e3 * (total - accounted), 100.0 * (total - accounted) / total);
  if (trainer.moe())  // each read waits for the device: zero is the aim (moe.device_routing)
    fmt::print("  host synchronisations inside the MoE layers: {:.0f} per step\n",
               static_cast<double>(trainer.moe()->host_reads() - moe_reads) / steps);
}

// Decoding (decoder models): one sequence continued position by position with the
// KV cache (the cost of position 0 and of position 127, each over a full cache
// below it), and 128 tokens generated with the cache against 128 generated
// without it, where every new token re-runs its whole prefix.
constexpr int64_t kDecodeTokens = 128;

std::vector<int32_t> decode_ids(const Config& cfg) {
  std::vector<int32_t> ids(static_cast<size_t>(kDecodeTokens));
  for (int64_t i = 0; i < kDecodeTokens; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 11) % cfg.model.vocab_size);
  return ids;
}

// The decoding model, made on first use: after the training benchmarks, so their
// peak memory does not count it.
struct LazyGenerator {
  const Config& cfg;
  Ops& ops;
  std::unique_ptr<Generator> gen;
  Generator& get() {
    if (gen) return *gen;
    gen = std::make_unique<Generator>(cfg.model, cfg.moe, ops, 1, kDecodeTokens, cfg.seed);
    gen->params().initialize(cfg.seed);
    if (!gen->can_route_causally()) {
      // Expert choice routes new tokens by thresholds; any will do for timing.
      RouterState state;
      for (int l : gen->moe_layer_ids())
        state[threshold_tensor_name(l)] =
            std::vector<double>(static_cast<size_t>(cfg.moe.num_experts), 1.0 / cfg.moe.num_experts);
      gen->set_router_state(state);
    }
    return *gen;
  }
};

void bench_decode_position(benchmark::State& state, LazyGenerator& lazy, const Config& cfg, int64_t position) {
  Generator& gen = lazy.get();
  const std::vector<int32_t> ids = decode_ids(cfg);
  gen.logits_along(std::vector<int32_t>(ids.begin(), ids.begin() + position));  // the cache below it
  for (auto _ : state) gen.decode_step(17, position);  // (feeding it again replaces it)
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void bench_generate(benchmark::State& state, LazyGenerator& lazy, const Config& cfg, bool cache) {
  Generator& gen = lazy.get();
  const std::vector<int32_t> ids = decode_ids(cfg);
  for (auto _ : state) {
    if (cache) {
      gen.logits_along(ids);
    } else {
      for (int64_t n = 1; n <= kDecodeTokens; ++n)
        gen.logits_along(std::vector<int32_t>(ids.begin(), ids.begin() + n));
    }
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations() * kDecodeTokens),
                                                  benchmark::Counter::kIsRate);
}

}  // namespace

// The MFU denominator the GPU targets are stated against.
constexpr double kPeakTflops = 989.0;

int run_bench(const Config& cfg, const std::vector<std::string>& benchmark_args) {
  auto ops = make_ops(cfg.backend);
  ops->set_threads(static_cast<int>(cfg.threads));
  Trainer trainer(cfg, *ops);
  log_info("bench: {} · {} parameters · flops/token {:.3e} · batch {}×{}", ops->name(),
           trainer.model().params().numel(), trainer.flops_per_token(), cfg.train.batch_size,
           cfg.train.seq_len);

  std::vector<std::string> args = {"switchyard-bench"};
  args.insert(args.end(), benchmark_args.begin(), benchmark_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  int argc = static_cast<int>(argv.size());
  benchmark::Initialize(&argc, argv.data());

  benchmark::RegisterBenchmark("sgemm/1024", bench_sgemm, std::ref(*ops), int64_t{1024})
      ->Unit(benchmark::kMillisecond)->MinTime(1.0);
  benchmark::RegisterBenchmark("train_step", bench_train_step, std::ref(trainer))
      ->Unit(benchmark::kMillisecond)->MinTime(3.0);
  if (cfg.model.d_model / cfg.model.n_heads <= kFusedAttentionMaxHeadDim)
    benchmark::RegisterBenchmark("attention/fused", bench_attention, cfg, true)
        ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
  benchmark::RegisterBenchmark("attention/reference", bench_attention, cfg, false)
      ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
  std::unique_ptr<MoeLayerBench> moe_bench;
  if (cfg.moe.enabled()) {
    moe_bench = std::make_unique<MoeLayerBench>(cfg);
    benchmark::RegisterBenchmark("moe_layer", bench_moe_layer, std::ref(*moe_bench))
        ->Unit(benchmark::kMillisecond)->MinTime(2.0);
    benchmark::RegisterBenchmark("dense_glu_same_expert_flops", bench_dense_same_flops, cfg,
                                 moe_bench->dense_hidden)
        ->Unit(benchmark::kMillisecond)->MinTime(2.0);
  }
  LazyGenerator gen{cfg, *ops, nullptr};
  if (cfg.model.arch == Arch::decoder && cfg.model.max_seq >= kDecodeTokens) {
    benchmark::RegisterBenchmark("decode/position:0", bench_decode_position, std::ref(gen), cfg, int64_t{0})
        ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
    benchmark::RegisterBenchmark("decode/position:127", bench_decode_position, std::ref(gen), cfg,
                                 kDecodeTokens - 1)
        ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
    benchmark::RegisterBenchmark("generate_128/kv_cache", bench_generate, std::ref(gen), cfg, true)
        ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
    benchmark::RegisterBenchmark("generate_128/no_cache", bench_generate, std::ref(gen), cfg, false)
        ->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
  }
  CapturingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  print_step_breakdown(trainer, 1000, 3);

  const double sgemm = reporter.results["sgemm/1024"]["GFLOP/s"];
  const double step = reporter.results["train_step"]["GFLOP/s"];
  const double tps = reporter.results["train_step"]["tokens/s"];
  if (sgemm > 0 && step > 0)
    fmt::print("\nsummary: train step {:.0f} tokens/s, {:.1f} GFLOP/s = {:.1f}% of this machine's "
               "sgemm rate ({:.1f} GFLOP/s, 1024³, same run)\n",
               tps, step, 100.0 * step / sgemm, sgemm);
  if (step > 0)
    fmt::print("summary: peak {} memory of training {:.2f} GiB (allocated through the backend: parameters, "
               "gradients, Adam moments, activations, scratch; {})\n",
               cfg.backend == Device::cuda ? "GPU" : "host", reporter.results["train_step"]["peak_GiB"],
               cfg.backend == Device::cuda ? "not the CUDA context or cuBLAS / NCCL workspaces" : "not the program");
  if (cfg.backend == Device::cuda && step > 0)
    fmt::print("summary: MFU {:.1f}% of {:.0f} TFLOP/s (H100 SXM dense bf16 peak){}\n",
               100.0 * step * 1e-3 / kPeakTflops, kPeakTflops,
               cfg.precision == Precision::bf16 ? "" : "; precision fp32 runs no tensor cores, so its rate bounds it far lower");
  const double fused_tf = reporter.results["attention/fused"]["TFLOP/s"];
  const double ref_tf = reporter.results["attention/reference"]["TFLOP/s"];
  if (fused_tf > 0 && ref_tf > 0)
    fmt::print("summary: attention forward + backward ({} × {} heads × {} positions, head dim {}{}): fused "
               "{:.2f} TFLOP/s in {:.2f} ms, {:.2f} GiB; reference {:.2f} TFLOP/s in {:.2f} ms, {:.2f} GiB\n",
               cfg.train.batch_size, cfg.model.n_heads, cfg.train.seq_len, cfg.model.d_model / cfg.model.n_heads,
               cfg.model.arch == Arch::decoder ? ", causal" : "", fused_tf, reporter.results["attention/fused"]["ms"],
               reporter.results["attention/fused"]["GiB"], ref_tf, reporter.results["attention/reference"]["ms"],
               reporter.results["attention/reference"]["GiB"]);
  const double moe_ms = reporter.results["moe_layer"]["ms"];
  const double dense_ms = reporter.results["dense_glu_same_expert_flops"]["ms"];
  if (moe_ms > 0 && dense_ms > 0)
    fmt::print("summary: MoE layer ({}, {} experts, {:.2f} experts/token) fwd+bwd {:.2f} ms; dense "
               "GLU with the same expert FLOPs (hidden {}) {:.2f} ms; routing + dispatch + combine "
               "overhead {:.1f}%\n",
               router_name(cfg.moe.router), cfg.moe.num_experts,
               reporter.results["moe_layer"]["experts/token"], moe_ms, moe_bench->dense_hidden,
               dense_ms, 100.0 * (moe_ms / dense_ms - 1.0));
  const double first = reporter.results["decode/position:0"]["ms"];
  const double last = reporter.results["decode/position:127"]["ms"];
  if (first > 0 && last > 0)
    fmt::print("summary: decoding one sequence with the KV cache: {:.0f} tokens/s over 128 tokens, without it "
               "{:.0f} tokens/s ({:.1f}× slower); token 128 costs {:.2f}× token 1 ({:.3f} / {:.3f} ms; target ≤ 1.5×)\n",
               reporter.results["generate_128/kv_cache"]["tokens/s"], reporter.results["generate_128/no_cache"]["tokens/s"],
               reporter.results["generate_128/kv_cache"]["tokens/s"] /
                   std::max(reporter.results["generate_128/no_cache"]["tokens/s"], 1e-9),
               last / first, last, first);
  return 0;
}

}  // namespace sy
