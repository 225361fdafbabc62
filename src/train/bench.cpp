#include "train/bench.h"

#include <benchmark/benchmark.h>

#include <unistd.h>

#include <map>
#include <memory>

#include "core/log.h"
#include "train/trainer.h"

namespace sy {
namespace {

// Keeps each benchmark's counters for the summary while printing as usual.
class CapturingReporter : public benchmark::ConsoleReporter {
 public:
  CapturingReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_Defaults : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (r.run_type == Run::RT_Iteration || r.aggregate_name == "median")
        for (const auto& [name, c] : r.counters) results[r.run_name.function_name][name] = c.value;
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, std::map<std::string, double>> results;
};

void bench_sgemm(benchmark::State& state, Ops& ops, int64_t n) {
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
  state.counters["GFLOP/s"] = benchmark::Counter(tokens * trainer.flops_per_token() * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

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
  CapturingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  const double sgemm = reporter.results["sgemm/1024"]["GFLOP/s"];
  const double step = reporter.results["train_step"]["GFLOP/s"];
  const double tps = reporter.results["train_step"]["tokens/s"];
  if (sgemm > 0 && step > 0)
    fmt::print("\nsummary: train step {:.0f} tokens/s, {:.1f} GFLOP/s = {:.1f}% of this machine's "
               "sgemm rate ({:.1f} GFLOP/s, 1024³, same run)\n",
               tps, step, 100.0 * step / sgemm, sgemm);
  return 0;
}

}  // namespace sy
