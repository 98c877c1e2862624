// f32 GEMV/GEMM throughput at each SIMD level, next to the two ceilings they should be
// judged against, measured in the same run:
//   - memory bandwidth: a STREAM-style triad (c = a + 3b, f64) on DRAM-sized (1 GiB per
//     array) and cache-sized arrays, 1 and 2 threads; GEMV reports GB/s of weights streamed;
//   - compute: the AVX-512 FMA peak, measured with independent register-resident FMA
//     chains on every thread, and the clock, measured with a chain of dependent integer
//     adds (one per cycle), so peak = threads × GHz × 2 FMA pipes × 16 lanes × 2 flops.
// GEMM reports GFLOP/s and its fraction of the measured FMA peak ("of_peak").
// Times are wall clock; the CPU column is the whole process's CPU time, so on a shared
// machine CPU < threads × wall shows how much of the cores the run actually got.
#include <benchmark/benchmark.h>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <memory>
#include <random>
#include <vector>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/gram.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

// Seconds this thread has run: on a shared machine the ceilings below are measured per
// thread of CPU time, so that time lost to other processes does not lower them.
double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

std::vector<float> random_values(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

bool use_level(benchmark::State& state, int level) {
  mcw::set_simd_level(mcw::SimdLevel(level));
  if (int(mcw::cpu_features().level) != level) {
    state.SkipWithError("CPU lacks this SIMD level");
    return false;
  }
  state.SetLabel(mcw::simd_level_name(mcw::SimdLevel(level)));
  return true;
}

int threads() { return tbb::this_task_arena::max_concurrency(); }

// ---- Clock and FMA peak ------------------------------------------------------------

// GHz of one core, from 10 dependent adds per loop trip (1 cycle each on any x86 core).
double measure_ghz_once() {
#if defined(__x86_64__)
  const int64_t trips = 20'000'000;
  int64_t x = 0, n = trips;
  const double t0 = thread_seconds();
  asm volatile(
      "1:\n\t"
      "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
      "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
      "dec %1\n\tjnz 1b"
      : "+r"(x), "+r"(n));
  const double s = thread_seconds() - t0;
  benchmark::DoNotOptimize(x);
  return double(trips) * 10 / s * 1e-9;
#else
  return 0;
#endif
}

#if defined(__x86_64__)
// FLOPs of 16 independent zmm FMA chains run for `trips` loop trips.
__attribute__((target("avx512f"))) double fma_chains(int64_t trips) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(float(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t t = 0; t < trips; ++t) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    asm volatile("" ::"v"(acc[0]));  // keeps the loop from being folded away
  }
  for (int i = 1; i < 16; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  benchmark::DoNotOptimize(acc[0]);
  return double(trips) * 16 * 16 * 2;
}
#endif

// All threads of the arena run FMA chains at once: GFLOP/s of the whole machine.
double measure_fma_peak_once() {
#if defined(__x86_64__)
  if (!mcw::cpu_features().avx512f) return 0;
  const int p = threads();
  std::vector<double> gflops(size_t(p), 0.0);
  tbb::parallel_for(
      tbb::blocked_range<int>(0, p, 1),
      [&](const tbb::blocked_range<int>& r) {
        for (int i = r.begin(); i < r.end(); ++i) {
          const double t0 = thread_seconds();
          const double flops = fma_chains(10'000'000);
          gflops[size_t(i)] = flops / (thread_seconds() - t0) * 1e-9;
        }
      },
      tbb::static_partitioner());
  double sum = 0;
  for (double g : gflops) sum += g;
  return sum;
#else
  return 0;
#endif
}

double fma_peak_gflops() {
  static const double peak = [] {
    double best = 0;
    for (int i = 0; i < 3; ++i) best = std::max(best, measure_fma_peak_once());
    return best;
  }();
  return peak;
}

void BM_CpuFrequency(benchmark::State& state) {
  double ghz = 0;
  for (auto _ : state) ghz = std::max(ghz, measure_ghz_once());
  state.counters["GHz"] = ghz;
  state.counters["formula_peak_GFLOPs"] = threads() * ghz * 2 * 16 * 2;
}
BENCHMARK(BM_CpuFrequency)->Iterations(5)->Unit(benchmark::kMillisecond);

void BM_FmaPeak(benchmark::State& state) {
  double gflops = 0;
  for (auto _ : state) gflops = std::max(gflops, measure_fma_peak_once());
  state.counters["GFLOPs"] = gflops;
  state.counters["threads"] = threads();
}
BENCHMARK(BM_FmaPeak)->Iterations(3)->Unit(benchmark::kMillisecond);

// ---- Bandwidth: STREAM triad -------------------------------------------------------

// args: bytes per array, threads. Each thread always touches the same slice (static
// partition, first touch included), as STREAM does with OpenMP.
void BM_Triad(benchmark::State& state) {
  const size_t count = size_t(state.range(0)) / sizeof(double);
  const int nthreads = int(state.range(1));
  std::unique_ptr<double[]> a(new double[count]), b(new double[count]), c(new double[count]);
  tbb::task_arena arena(nthreads);
  const size_t chunk = (count + size_t(nthreads) - 1) / size_t(nthreads);
  auto for_slices = [&](auto&& body) {
    arena.execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<size_t>(0, count, chunk),
          [&](const tbb::blocked_range<size_t>& r) { body(r.begin(), r.end()); },
          tbb::static_partitioner());
    });
  };
  for_slices([&](size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; ++i) a[i] = 1.0, b[i] = 2.0, c[i] = 0.0;
  });
  for (auto _ : state) {
    for_slices([&](size_t lo, size_t hi) {
      const double* __restrict pa = a.get();
      const double* __restrict pb = b.get();
      double* __restrict pc = c.get();
      for (size_t i = lo; i < hi; ++i) pc[i] = pa[i] + 3.0 * pb[i];
    });
    benchmark::ClobberMemory();
  }
  // STREAM counts the bytes the kernel names: two arrays read, one written.
  state.counters["GB"] = benchmark::Counter(3.0 * double(count * sizeof(double)) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Triad)
    ->ArgNames({"bytes", "threads"})
    ->Args({1 << 30, 1})
    ->Args({1 << 30, 2})
    ->Args({8 << 20, 2})
    ->Args({256 << 10, 2})
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

// ---- GEMV: one token through a linear layer ---------------------------------------

// args: level, n (outputs), k (inputs). Weights are f32 [n, k].
void BM_Gemv(benchmark::State& state) {
  if (!use_level(state, int(state.range(0)))) return;
  const int64_t n = state.range(1), k = state.range(2);
  const std::vector<float> w = random_values(size_t(n * k), 1), x = random_values(size_t(k), 2);
  std::vector<float> y(static_cast<size_t>(n));
  for (auto _ : state) {
    mcw::matmul_wt(x.data(), w.data(), y.data(), 1, n, k);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GB"] = benchmark::Counter(double(n * k) * 4 * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP"] = benchmark::Counter(2.0 * double(n * k) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
  mcw::set_simd_level(mcw::SimdLevel::Avx512);
}
BENCHMARK(BM_Gemv)
    ->ArgNames({"level", "n", "k"})
    ->ArgsProduct({{0, 1, 2}, {4096}, {4096}})
    ->ArgsProduct({{0, 1, 2}, {14336}, {4096}})  // llama-3 8B gate/up projection
    ->ArgsProduct({{0, 1, 2}, {4096}, {14336}})  // down projection; ggml's anchor shape
    ->ArgsProduct({{0, 1, 2}, {1024}, {1024}})   // 4 MiB of weights: cache resident
    ->Unit(benchmark::kMicrosecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

// ---- GEMM: prefill and the two backward products -----------------------------------

enum class Op { Forward, BackwardData, BackwardWeight };

// args: level, op, m, n, k.
void BM_Gemm(benchmark::State& state) {
  if (!use_level(state, int(state.range(0)))) return;
  const Op op = Op(state.range(1));
  const int64_t m = state.range(2), n = state.range(3), k = state.range(4);
  const std::vector<float> a = random_values(size_t(m * k), 1), b = random_values(size_t(k * n), 2);
  std::vector<float> c(static_cast<size_t>(m * n));
  for (auto _ : state) {
    switch (op) {
      case Op::Forward: mcw::matmul_wt(a.data(), b.data(), c.data(), m, n, k); break;
      case Op::BackwardData: mcw::matmul(a.data(), b.data(), c.data(), m, n, k); break;
      case Op::BackwardWeight: mcw::matmul_at(a.data(), b.data(), c.data(), m, n, k); break;
    }
    benchmark::DoNotOptimize(c.data());
  }
  const double flops = 2.0 * double(m) * double(n) * double(k);
  state.counters["GFLOP"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (const double peak = fma_peak_gflops(); peak > 0)
    state.counters["of_peak"] = benchmark::Counter(
        flops * 1e-9 / peak, benchmark::Counter::kIsIterationInvariantRate);
  mcw::set_simd_level(mcw::SimdLevel::Avx512);
}
BENCHMARK(BM_Gemm)
    ->ArgNames({"level", "op", "m", "n", "k"})
    ->ArgsProduct({{0, 1, 2}, {int(Op::Forward)}, {512}, {4096}, {4096}})
    ->Args({2, int(Op::BackwardData), 512, 4096, 4096})     // dX = dY·W, 512 tokens
    ->Args({2, int(Op::BackwardWeight), 4096, 4096, 512})   // dW = dYᵀ·X, 512 tokens
    ->ArgsProduct({{2}, {int(Op::Forward)}, {64, 8, 9}, {4096}, {4096}})
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

// Calibration Hessians: G += XᵀX (f64) for one window of n activation rows of c channels.
// args: c, n, way (0: matmul_at of each 256-row chunk into a c × c f32 buffer added to G,
// as before accumulate_gram; 1: accumulate_gram). GFLOP counts the full product for both.
void BM_Gram(benchmark::State& state) {
  const int64_t c = state.range(0), n = state.range(1);
  const bool gram = state.range(2) == 1;
  const std::vector<float> x = random_values(size_t(n * c), 3);
  std::vector<double> g(size_t(c * c));
  std::vector<float> part(gram ? 0 : size_t(c * c));
  for (auto _ : state) {
    if (gram) {
      mcw::accumulate_gram(x.data(), c, n, c, g.data());
    } else {
      for (int64_t r0 = 0; r0 < n; r0 += 256) {
        mcw::matmul_at(x.data() + r0 * c, x.data() + r0 * c, part.data(), c, c,
                       std::min<int64_t>(256, n - r0));
        for (size_t i = 0; i < part.size(); ++i) g[i] += double(part[i]);
      }
    }
    benchmark::DoNotOptimize(g.data());
  }
  state.SetLabel(gram ? "accumulate_gram" : "matmul_at chunks + f64 merge");
  state.counters["GFLOP"] = benchmark::Counter(2.0 * double(c) * double(c) * double(n) * 1e-9,
                                               benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Gram)
    ->ArgNames({"c", "n", "way"})
    ->ArgsProduct({{2048, 8192}, {2048}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

// Output error through H: tr(M·H·Mᵀ) for M [rows, cols], H [cols, cols] f64.
// args: rows, cols, way (0: H copied to f32, then matmul over 256-row blocks of M and an
// f64 dot, as before weighted_square_norm moved to kernels/gram; 1: weighted_square_norm).
void BM_WeightedSquareNorm(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const bool tiled = state.range(2) == 1;
  const std::vector<float> m = random_values(size_t(rows * cols), 4);
  const std::vector<float> hf = random_values(size_t(cols * cols), 5);
  const std::vector<double> h(hf.begin(), hf.end());
  double sum = 0;
  for (auto _ : state) {
    if (tiled) {
      sum += mcw::weighted_square_norm(m.data(), rows, cols, h.data());
    } else {
      const std::vector<float> h32(h.begin(), h.end());
      std::vector<float> mh(size_t(256 * cols));
      for (int64_t r0 = 0; r0 < rows; r0 += 256) {
        const int64_t n = std::min<int64_t>(256, rows - r0);
        mcw::matmul(m.data() + r0 * cols, h32.data(), mh.data(), n, cols, cols);
        for (int64_t i = 0; i < n * cols; ++i) sum += double(mh[size_t(i)]) * m[size_t(r0 * cols + i)];
      }
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetLabel(tiled ? "weighted_square_norm" : "f32 H + matmul blocks");
  state.counters["GFLOP"] = benchmark::Counter(2.0 * double(rows) * double(cols) * double(cols) * 1e-9,
                                               benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_WeightedSquareNorm)
    ->ArgNames({"rows", "cols", "way"})
    ->ArgsProduct({{2048}, {2048, 8192}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
