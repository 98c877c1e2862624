// AWQ of one linear layer at Llama-3-8B widths (4-bit, group 128, 512 calibration tokens,
// the reference's clip sample): the scale search alone (clip off) and with the clipping
// search (10 shrinks per row and group). Arg: the layer's input width (4096: q/o/gate,
// 14336: down_proj); 4096 output rows. "clip_s" is the clipping search's share.
#include <benchmark/benchmark.h>

#include <chrono>
#include <random>
#include <vector>

#include "engine/compress/awq.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kRows = 4096, kTokens = 512;

std::vector<float> random_values(size_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

double run_seconds(const std::vector<float>& w, const std::vector<float>& x, int64_t cols,
                   bool clip) {
  mcw::AwqOptions o;
  o.bits = 4, o.group_size = 128, o.grid = 2, o.clip = clip;
  const auto t0 = Clock::now();
  const mcw::AwqResult r = mcw::quantize_awq({{w.data(), kRows, "l"}}, x.data(), kTokens, cols, o);
  benchmark::DoNotOptimize(r.layers[0].codes.data());
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void BM_AwqLayer(benchmark::State& state) {
  const int64_t cols = state.range(0);
  const auto w = random_values(size_t(kRows * cols), 1, 0.02f);
  const auto x = random_values(size_t(kTokens * cols), 2, 1.0f);
  double plain = 0, clipped = 0;
  for (auto _ : state) {
    plain = run_seconds(w, x, cols, false);
    clipped = run_seconds(w, x, cols, true);
    state.SetIterationTime(clipped);
  }
  state.counters["scale_search_s"] = plain;
  state.counters["clip_s"] = clipped - plain;
  state.SetLabel("4096 x " + std::to_string(cols) + ", w4 g128, 512 tokens");
}
BENCHMARK(BM_AwqLayer)->Arg(4096)->Arg(14336)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
