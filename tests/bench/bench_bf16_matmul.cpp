// Products of bf16 weights at Llama-3-8B shapes (W [out, in]: 4096×4096 for q/o,
// 14336×4096 for gate/up, 4096×14336 for down), each path against today's tile path
// (rows converted to an f32 scratch tile, then the f32 GEMM), measured in one executable:
//   - BM_Bf16Gemv: m = 1 and 8, tile path vs the direct GEMV (half_gemv.h), GB/s of weight
//     bytes streamed (bf16, 2 bytes per value);
//   - BM_Bf16Gemm: m = 256 (a prefill chunk), tile path vs the AVX-512 BF16 GEMM
//     (bf16_dot_gemm.h, x rounded to bf16), GFLOP/s (2·m·n·k per product).
// Weights are random bf16 in anonymous memory; speed does not depend on the values. Each
// product runs on all threads of the default arena (oneTBB).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "engine/core/half.h"
#include "engine/core/tensor.h"
#include "engine/kernels/bf16_dot_gemm.h"
#include "engine/kernels/half_gemv.h"
#include "engine/kernels/stored_matmul.h"

namespace {

struct Rng {  // xorshift64*: fast enough to fill gigabytes
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  float uniform() { return float(next() >> 40) / float(1 << 24) * 2.0f - 1.0f; }
};

const int64_t kShapes[][2] = {{4096, 4096}, {14336, 4096}, {4096, 14336}};

const mcw::Tensor& weight(int shape) {
  static std::map<int, mcw::Tensor> cache;
  auto it = cache.find(shape);
  if (it != cache.end()) return it->second;
  const int64_t n = kShapes[shape][0], k = kShapes[shape][1];
  mcw::Tensor w = mcw::Tensor::zeros(mcw::DType::BF16, {n, k}, "w");
  auto* bits = static_cast<uint16_t*>(w.mutable_data());
  Rng rng{uint64_t(shape) * 77 + 1};
  for (int64_t i = 0; i < n * k; ++i) bits[i] = mcw::f32_to_bf16(0.05f * rng.uniform());
  return cache.emplace(shape, std::move(w)).first->second;
}

std::vector<float> activations(int64_t m, int64_t k) {
  Rng rng{uint64_t(m * 131 + k)};
  std::vector<float> x(size_t(m * k));
  for (float& v : x) v = rng.uniform();
  return x;
}

// Today's path for any m: tiles of rows converted to f32, sized as matmul_wt_stored sizes
// them, then the f32 GEMM.
void tile_path(const float* X, const mcw::Tensor& W, float* Y, int64_t m) {
  const int64_t n = W.dim(0), k = W.dim(1);
  const int64_t target = m <= 8 ? (int64_t(1) << 13) : (int64_t(1) << 18);
  const int64_t tile = std::clamp<int64_t>(target / k, 4, n);
  mcw::matmul_wt_row_tiles(
      X, k, n, k, tile,
      [&](int64_t r0, int64_t r1, float* dst) { mcw::weight_rows_f32(W, r0, r1, dst); }, Y, n, m,
      nullptr, false);
}

enum Path { kTile = 0, kDirect = 1, kAmx = 2 };

void BM_Bf16Gemv(benchmark::State& state) {
  const int shape = int(state.range(0));
  const int64_t m = state.range(1);
  const Path path = Path(state.range(2));
  const mcw::Tensor& W = weight(shape);
  const int64_t n = W.dim(0), k = W.dim(1);
  const std::vector<float> x = activations(m, k);
  std::vector<float> y(size_t(m * n));
  for (auto _ : state) {
    if (path == kTile) tile_path(x.data(), W, y.data(), m);
    else
      mcw::gemv_wt_half(mcw::HalfFormat::BF16, x.data(), k, static_cast<const uint16_t*>(W.data()),
                        k, y.data(), n, m, n, k);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(path == kTile ? "tile" : "direct") + " " + std::to_string(n) + "x" +
                 std::to_string(k) + " m=" + std::to_string(m));
  state.counters["GB/s"] =
      benchmark::Counter(double(n * k * 2), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Bf16Gemm(benchmark::State& state) {
  const int shape = int(state.range(0));
  const int64_t m = state.range(1);
  const Path path = Path(state.range(2));
  if (path != kTile && !mcw::bf16_dot_gemm_available()) {
    state.SkipWithError("no AVX-512 BF16 on this CPU");
    return;
  }
  mcw::set_amx_bf16(path == kAmx);
  if (path == kAmx && !mcw::amx_bf16_usable()) {
    state.SkipWithError("no AMX-BF16 on this CPU (or its kernel)");
    return;
  }
  const mcw::Tensor& W = weight(shape);
  const int64_t n = W.dim(0), k = W.dim(1);
  const std::vector<float> x = activations(m, k);
  std::vector<float> y(size_t(m * n));
  for (auto _ : state) {
    if (path == kTile) tile_path(x.data(), W, y.data(), m);
    else
      mcw::matmul_wt_bf16_dot(x.data(), k, static_cast<const uint16_t*>(W.data()), k, y.data(), n,
                              m, n, k);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(path == kTile ? "tile" : path == kAmx ? "amx" : "dpbf16") + " " +
                 std::to_string(n) + "x" +
                 std::to_string(k) + " m=" + std::to_string(m));
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(m) * double(n) * double(k),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// Paths of one shape and m run next to each other, so that ratios compare like with like.
void gemv_args(benchmark::internal::Benchmark* b) {
  for (int s = 0; s < 3; ++s)
    for (int64_t m : {1, 8})
      for (int p : {kTile, kDirect}) b->Args({s, m, p});
}
void gemm_args(benchmark::internal::Benchmark* b) {
  for (int s = 0; s < 3; ++s)
    for (int64_t m : {256, 2048})
      for (int p : {kTile, kDirect, kAmx}) b->Args({s, m, p});
}

}  // namespace

BENCHMARK(BM_Bf16Gemv)->Apply(gemv_args)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Bf16Gemm)->Apply(gemm_args)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
