// Loading a project's runs from the store and computing their Pareto fronts: what the
// runs panel and the accuracy-vs-latency plot do on every refresh. Target: 10,000 runs
// with 8 metrics each, loaded and both fronts computed, in under 100 ms.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "engine/runs/pareto.h"
#include "engine/runs/run_pareto.h"
#include "engine/runs/run_store.h"

using namespace mcw;

namespace {

constexpr int kRuns = 10000;

struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("mcw_bench_runs_" + std::to_string(getpid()));
  TempDir() {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// Generated once per process, in one transaction.
const std::string& store_path() {
  static const TempDir dir;
  static const std::string path = [] {
    const std::string p = (dir.path / "runs.mcwdb").string();
    const auto store = RunStore::open(p);
    std::mt19937 rng(1);
    std::uniform_real_distribution<double> u(0, 1);
    const char* recipe = "stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 128\n";
    store->batch([&] {
      for (int i = 0; i < kRuns; ++i) {
        RunInfo r;
        r.project = "bench";
        r.model_fingerprint = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        r.recipe_name = "recipe-" + std::to_string(i);
        r.recipe_text = recipe;
        const int64_t id = store->create_run(r);
        // Fewer bits: smaller and faster, but less accurate: a real trade-off, so the
        // fronts are not trivially one point.
        const double bits = 2 + 14 * u(rng);
        store->add_metrics(id, {{"perplexity", 10 + 40 / bits + u(rng)},
                                {"kl", 1 / bits + 0.1 * u(rng)},
                                {"top1", 1 - 0.3 / bits},
                                {"bits_per_weight", bits},
                                {"size_bytes", bits * 1e9 / 8 * (1 + 0.1 * u(rng))},
                                {"latency_ms_per_token", 5 + bits * (1 + u(rng))},
                                {"prefill_tokens_per_s", 1000 / bits},
                                {"compress_seconds", 60 * u(rng)}});
        store->set_status(id, RunStatus::Done);
      }
    });
    return p;
  }();
  return path;
}

void BM_LoadRuns(benchmark::State& state) {
  const auto store = RunStore::open(store_path());
  for (auto _ : state) {
    auto runs = store->load_runs_with_metrics({"bench", std::nullopt});
    benchmark::DoNotOptimize(runs.data());
    if (runs.size() != size_t(kRuns)) state.SkipWithError("wrong run count");
  }
  state.SetItemsProcessed(state.iterations() * kRuns);
}
BENCHMARK(BM_LoadRuns)->Unit(benchmark::kMillisecond);

void BM_LoadRunsAndParetoFronts(benchmark::State& state) {
  const auto store = RunStore::open(store_path());
  size_t f2 = 0, f3 = 0;
  for (auto _ : state) {
    const auto runs = store->load_runs_with_metrics({"bench", std::nullopt});
    f2 = pareto_runs(runs, {"perplexity", "latency_ms_per_token"}).size();
    f3 = pareto_runs(runs, {"perplexity", "latency_ms_per_token", "size_bytes"}).size();
    benchmark::DoNotOptimize(f2 + f3);
  }
  state.counters["front_2d"] = double(f2);
  state.counters["front_3d"] = double(f3);
}
BENCHMARK(BM_LoadRunsAndParetoFronts)->Unit(benchmark::kMillisecond);

void BM_Pareto3d(benchmark::State& state) {
  std::mt19937 rng(2);
  std::normal_distribution<double> d;
  std::vector<std::array<double, 3>> pts(size_t(state.range(0)));
  for (auto& p : pts) p = {d(rng), 0, d(rng)}, p[1] = -p[0] + 0.3 * d(rng);
  for (auto _ : state) benchmark::DoNotOptimize(pareto_front_3d(pts).size());
  state.SetComplexityN(state.range(0));
}
BENCHMARK(BM_Pareto3d)->Range(1 << 10, 1 << 17)->Complexity()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
