// The lookup-table product (lut_gemv.h) beside the int8-activation Affine product it would
// replace, in one executable so that their ratio is measured in one run:
//   BM_LutVsAffine/<bits>/<rows>/<cols>/<impl>: y = W·x, m = 1, 2 threads, g128 asymmetric
//   codes at 4096×14336 and 14336×4096 (out × in), impl 0 = LutWeight with Int8 activations
//   (the default: the int8 path's precision), 1 = PackedWeight from the same CompressedTensor
//   (int8 activations, the default; 1-bit codes have no Affine kernel and take its f16
//   fallback, which the label says), 2 = LutWeight with Int6 activations.
//   BM_LutVsAffineOneThreadCached/<bits>/<impl>: the same at 512×4096 on one thread, a
//   matrix that stays in L2/L3: the kernels' own speed, free of memory bandwidth.
//   BM_Interleaved/<bits>/<rows>/<cols>: the three impls of one shape timed product by
//   product in turn (the order rotating), 2 threads, 300 rounds: medians and minima of each,
//   and the median over rounds of the Affine / LUT time ratio. On a machine shared with
//   other work, neighbouring products see the same load, so the ratio is steadier than the
//   separate benchmarks' times.
// Both sides include their per-product preparation of x (rounding, tables or group sums).
// rel_err: ‖y − y_f32‖ / ‖y_f32‖ against the exact product (PackedWeight with int8
// activations off), the price of each side's activation rounding (LUT: |x̂| <= 31 per group,
// int8: |x̂| <= 127).
// Weights are random: neither kernel's speed depends on the codes. Run with
// --benchmark_repetitions=N --benchmark_enable_random_interleaving=true for interleaved
// samples.
#include <benchmark/benchmark.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/lut_gemv.h"
#include "engine/kernels/packed_weight.h"
#include "engine/kernels/stored_matmul.h"

namespace {

using mcw::CompressedTensor;

struct Rng {  // xorshift64*
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  float uniform() { return float(next() >> 40) / float(1 << 24) * 2.0f - 1.0f; }
};

// As bench_packed_gemv.cpp makes its q<bits> g128 weights: random code bytes, scales and
// integer zeros that cycle.
CompressedTensor make_tensor(int bits, int64_t rows, int64_t cols) {
  Rng rng{uint64_t(bits) * 0x9E3779B97F4A7C15ULL + 1};
  CompressedTensor t;
  t.name = "w";
  t.rows = rows, t.cols = cols;
  t.coding = mcw::WeightCoding::Affine;
  t.bits = bits;
  t.group_size = 128;
  const size_t n = size_t(rows * cols);
  t.codes.resize((n * size_t(bits) + 7) / 8);
  for (size_t i = 0; i < t.codes.size(); i += 8) {
    const uint64_t v = rng.next();
    std::memcpy(t.codes.data() + i, &v, std::min<size_t>(8, t.codes.size() - i));
  }
  const size_t groups = size_t(rows * ((cols + 127) / 128));
  t.scales.resize(groups);
  t.zeros.resize(groups);
  for (size_t g = 0; g < groups; ++g)
    t.scales[g] = 0.01f + 0.001f * float(g % 7), t.zeros[g] = float(g % (1u << bits));
  return t;
}

// The last tensor made, so that the two impls of one shape share it (and only one is held).
const CompressedTensor& tensor(int bits, int64_t rows, int64_t cols) {
  static std::tuple<int, int64_t, int64_t> key{-1, 0, 0};
  static std::unique_ptr<CompressedTensor> t;
  if (!t || key != std::tuple{bits, rows, cols}) {
    t.reset();
    t = std::make_unique<CompressedTensor>(make_tensor(bits, rows, cols));
    key = {bits, rows, cols};
  }
  return *t;
}

void product(benchmark::State& state, int bits, int64_t rows, int64_t cols, int64_t impl,
             int threads) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(threads));
  mcw::set_simd_level(mcw::SimdLevel::Avx512);  // clamped to the hardware
  mcw::set_int8_activations(true);
  const CompressedTensor& t = tensor(bits, rows, cols);
  std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows));
  Rng rng{7};
  for (float& v : x) v = rng.uniform();
  std::vector<float> exact(static_cast<size_t>(rows));
  {
    mcw::set_int8_activations(false);
    mcw::PackedWeight::from_compressed(t).matmul(x.data(), exact.data(), 1);
    mcw::set_int8_activations(true);
  }
  auto run = [&](const auto& w, const std::string& label) {
    w.matmul(x.data(), y.data(), 1);
    double num = 0, den = 0;
    for (size_t r = 0; r < y.size(); ++r)
      num += double(y[r] - exact[r]) * (y[r] - exact[r]), den += double(exact[r]) * exact[r];
    state.counters["rel_err"] = std::sqrt(num / den);
    for (auto _ : state) {
      w.matmul(x.data(), y.data(), 1);
      benchmark::DoNotOptimize(y.data());
    }
    const double bytes = double(w.weight_bytes());
    state.counters["MB"] = bytes / 1e6;
    state.counters["GB/s"] =
        benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(label + " " + std::to_string(rows) + "x" + std::to_string(cols));
  };
  if (impl != 1) {
    const mcw::LutWeight w = mcw::LutWeight::from_compressed(
        t, impl == 0 ? mcw::LutActivations::Int8 : mcw::LutActivations::Int6);
    run(w, w.describe() + " " + mcw::lut_gemv_path());
  } else {
    const mcw::PackedWeight w = mcw::PackedWeight::from_compressed(t);
    run(w, w.describe() + " " + mcw::packed_gemv_path() + " int8 x");
  }
}

void BM_LutVsAffine(benchmark::State& state) {
  product(state, int(state.range(0)), state.range(1), state.range(2), state.range(3), 2);
}

// Args: bits, rows (out), cols (in), impl (0 LUT x int8, 1 Affine int8, 2 LUT x int6). Each
// shape's impls are registered next to each other.
void args(benchmark::internal::Benchmark* b) {
  for (auto [r, c] : {std::pair<int64_t, int64_t>{4096, 14336}, {14336, 4096}})
    for (int64_t bits : {1, 2, 3, 4})
      for (int64_t impl : {0, 1, 2}) b->Args({bits, r, c, impl});
}
BENCHMARK(BM_LutVsAffine)->Apply(args)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_LutVsAffineOneThreadCached(benchmark::State& state) {
  product(state, int(state.range(0)), 512, 4096, state.range(1), 1);
}
BENCHMARK(BM_LutVsAffineOneThreadCached)
    ->ArgsProduct({{1, 2, 3, 4}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond);

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void BM_Interleaved(benchmark::State& state) {
  const int bits = int(state.range(0));
  const int64_t rows = state.range(1), cols = state.range(2);
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, 2);
  mcw::set_simd_level(mcw::SimdLevel::Avx512);
  mcw::set_int8_activations(true);
  const CompressedTensor& t = tensor(bits, rows, cols);
  const mcw::LutWeight lut8 = mcw::LutWeight::from_compressed(t, mcw::LutActivations::Int8);
  const mcw::LutWeight lut6 = mcw::LutWeight::from_compressed(t, mcw::LutActivations::Int6);
  const mcw::PackedWeight affine = mcw::PackedWeight::from_compressed(t);
  std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows));
  Rng rng{7};
  for (float& v : x) v = rng.uniform();
  auto time_us = [&](int impl) {
    const auto t0 = std::chrono::steady_clock::now();
    if (impl == 0) lut8.matmul(x.data(), y.data(), 1);
    if (impl == 1) affine.matmul(x.data(), y.data(), 1);
    if (impl == 2) lut6.matmul(x.data(), y.data(), 1);
    benchmark::DoNotOptimize(y.data());
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  };
  for (int impl = 0; impl < 3; ++impl) time_us(impl);  // warm: caches, pages, TBB threads
  std::vector<double> us[3], ratio;
  for (auto _ : state) {
    for (int round = 0; round < 300; ++round) {
      double r[3];
      for (int k = 0; k < 3; ++k) {
        const int impl = (round + k) % 3;
        r[impl] = time_us(impl);
        us[impl].push_back(r[impl]);
      }
      ratio.push_back(r[1] / r[0]);
    }
  }
  const char* names[3] = {"lut8_us", "affine_us", "lut6_us"};
  for (int impl = 0; impl < 3; ++impl) {
    state.counters[names[impl]] = median(us[impl]);
    state.counters[std::string(names[impl]) + "_min"] =
        *std::min_element(us[impl].begin(), us[impl].end());
  }
  state.counters["affine/lut8"] = median(ratio);
  state.SetLabel(lut8.describe() + " vs " + affine.describe() + " " + std::to_string(rows) + "x" +
                 std::to_string(cols));
}
BENCHMARK(BM_Interleaved)
    ->ArgsProduct({{1, 2, 3, 4}, {4096}, {14336}})
    ->ArgsProduct({{1, 2, 3, 4}, {14336}, {4096}})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
