// One-shot cost of the pruning and low-rank methods on a 4096×4096 linear layer (the size
// of a 7B model's attention projections), with calibration statistics from random tokens.
// Each benchmark runs once (Iterations(1)): these are minutes-scale operations whose
// wall-clock time is what a user waits for. The statistics are built once per process
// and timed by BM_LayerStats on their own.
//   BM_LayerStats:       XᵀX, Σx², max|x| of 8192 tokens (f32 GEMM chunks summed in f64)
//   BM_InverseCholesky:  the f64 factor U (H⁻¹ = UᵀU) SparseGPT sweeps with
//   BM_SparseGpt:        the whole of SparseGPT at 50 % and 2:4, block 128
//   BM_Wanda:            Wanda at 50 % (for scale: no weight update)
//   BM_LowRank:          randomized truncated SVD to rank 256 (3 power iterations)
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "../engine/quant_test_util.h"
#include "engine/compress/layer_stats_accumulate.h"
#include "engine/compress/linalg.h"
#include "engine/compress/low_rank.h"
#include "engine/compress/sparsegpt.h"
#include "engine/compress/wanda.h"
#include "engine/core/huge_pages.h"

namespace {

constexpr int64_t kDim = 4096, kTokens = 8192;

using quant_test::gaussian;

struct Layer {
  mcw::Tensor w;
  std::vector<float> x;
  mcw::LayerStats stats;
};

// Activations with a few outlier channels, as LLM inputs have.
std::vector<float> tokens() {
  std::vector<float> x = gaussian(size_t(kTokens * kDim), 2);
  for (int64_t t = 0; t < kTokens; ++t)
    for (int64_t c = 7; c < kDim; c += 256) x[size_t(t * kDim + c)] *= 20.0f;
  return x;
}

const Layer& layer() {
  static const std::unique_ptr<Layer> l = [] {
    auto p = std::make_unique<Layer>();
    p->w = mcw::Tensor::from_f32(gaussian(size_t(kDim * kDim), 1), {kDim, kDim}, "w");
    p->x = tokens();
    p->stats = mcw::make_layer_stats(kDim);
    mcw::accumulate(p->stats, p->x.data(), kTokens);
    return p;
  }();
  return *l;
}

void BM_LayerStats(benchmark::State& state) {
  const auto x = tokens();
  for (auto _ : state) {
    mcw::LayerStats s = mcw::make_layer_stats(kDim);
    mcw::accumulate(s, x.data(), kTokens);
    benchmark::DoNotOptimize(s.xtx.data());
  }
}

void BM_InverseCholesky(benchmark::State& state) {
  std::vector<double> H = layer().stats.xtx, U;
  for (int64_t j = 0; j < kDim; ++j) H[size_t(j * kDim + j)] += 0.01 * double(kTokens);
  for (auto _ : state) {
    if (!mcw::inverse_cholesky_upper(H.data(), kDim, U)) state.SkipWithError("not PD");
    benchmark::DoNotOptimize(U.data());
  }
  // n³/3 for the Cholesky and n³/3 for the triangular inverse, 2 flops each.
  state.counters["GFLOP/s"] =
      benchmark::Counter(4.0 / 3 * double(kDim) * kDim * kDim * 1e-9, benchmark::Counter::kIsRate);
}

void BM_SparseGpt(benchmark::State& state) {
  const Layer& l = layer();
  mcw::SparseGptOptions o;
  if (state.range(0) == 0)
    o.target = {0.5, 0, 0};
  else
    o.target = {0, 2, 4};
  state.SetLabel(state.range(0) == 0 ? "50%" : "2:4");
  for (auto _ : state) benchmark::DoNotOptimize(mcw::sparsegpt_prune(l.w, l.stats, o).rows);
}

void BM_Wanda(benchmark::State& state) {
  const Layer& l = layer();
  for (auto _ : state) benchmark::DoNotOptimize(mcw::wanda_prune(l.w, l.stats, {}).rows);
}

void BM_LowRank(benchmark::State& state) {
  const Layer& l = layer();
  mcw::LowRankOptions o;
  o.rank = 256;
  for (auto _ : state) benchmark::DoNotOptimize(mcw::low_rank(l.w, o).rank);
}

}  // namespace

BENCHMARK(BM_LayerStats)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_InverseCholesky)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_SparseGpt)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_Wanda)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_LowRank)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

int main(int argc, char** argv) {
  mcw::restart_with_huge_page_malloc(argv);  // as mcw runs (engine/core/huge_pages.h)
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
