// GPTQ of one 4096×4096 linear layer (4-bit, group 128), next to one f32 GEMM of the same
// shape (4096×4096×4096) measured in the same run: "ratio" = GPTQ seconds / GEMM seconds.
// The inverse-Hessian factorisation (the part GPTQ adds to a GEMM's worth of updates) is
// also timed alone, in f64 and in f32. The process restarts itself with glibc's huge-page
// malloc as mcw does (engine/core/huge_pages.h): without it, first-touch page faults of
// GPTQ's fresh buffers cost a fifth of its time on these VMs.
//
// Calibration: GPTQ's cost does not depend on the token count once H = XᵀX exists, so H is
// formed (with matmul_at, in the fixture) from 8192 random tokens instead of the 128×512 =
// 65536 of a real run: XᵀX of 65536×4096 is 2.2 TFLOP, tens of seconds on two cores,
// and only conditioning, not timing, would change. MCW_GPTQ_TOKENS overrides the count.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <vector>

#include "engine/compress/gptq.h"
#include "engine/compress/linalg.h"
#include "engine/core/huge_pages.h"
#include "engine/kernels/gemm.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kDim = 4096;

std::vector<float> random_values(size_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

const mcw::LayerStats& stats() {
  static const mcw::LayerStats s = [] {
    int64_t tokens = 8192;
    if (const char* t = std::getenv("MCW_GPTQ_TOKENS"))
      tokens = std::max<int64_t>(kDim, std::atoll(t));
    const auto x = random_values(size_t(tokens * kDim), 1, 1.0f);
    std::vector<float> h(size_t(kDim * kDim));
    mcw::matmul_at(x.data(), x.data(), h.data(), kDim, kDim, tokens);
    return mcw::LayerStats{kDim, std::vector<double>(h.begin(), h.end()), {}, {}, tokens};
  }();
  return s;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double gemm_seconds() {
  const auto a = random_values(size_t(kDim * kDim), 2, 1.0f),
             b = random_values(size_t(kDim * kDim), 3, 1.0f);
  std::vector<float> c(size_t(kDim * kDim));
  mcw::matmul(a.data(), b.data(), c.data(), kDim, kDim, kDim);  // warm-up
  double best = 1e30;
  for (int i = 0; i < 2; ++i) {
    const auto t0 = Clock::now();
    mcw::matmul(a.data(), b.data(), c.data(), kDim, kDim, kDim);
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

void BM_Gptq4096(benchmark::State& state) {
  const mcw::LayerStats& st = stats();
  const auto w = random_values(size_t(kDim * kDim), 4, 0.02f);
  mcw::GptqOptions o;
  o.bits = 4, o.group_size = 128, o.act_order = state.range(0) != 0;
  const double gemm = gemm_seconds();
  double secs = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    mcw::CompressedTensor q = mcw::quantize_gptq(w.data(), kDim, kDim, st, o);
    secs = seconds_since(t0);
    benchmark::DoNotOptimize(q.codes.data());
    state.SetIterationTime(secs);
  }
  state.counters["gptq_s"] = secs;
  state.counters["gemm_s"] = gemm;
  state.counters["ratio"] = secs / gemm;
  state.counters["tokens"] = double(st.samples);
  state.SetLabel(o.act_order ? "4-bit g128 act-order" : "4-bit g128");
}
BENCHMARK(BM_Gptq4096)->Arg(0)->Arg(1)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

// The factorisation alone, f64 (Arg 0) or f32 (Arg 1), on the dampened H.
template <typename T>
void inverse_factor(benchmark::State& state) {
  const mcw::LayerStats& st = stats();
  double mean = 0;
  for (int64_t j = 0; j < kDim; ++j) mean += st.xtx[size_t(j * kDim + j)];
  std::vector<T> h(st.xtx.begin(), st.xtx.end());
  for (int64_t j = 0; j < kDim; ++j) h[size_t(j * kDim + j)] += T(0.01 * mean / double(kDim));
  for (auto _ : state) {
    std::vector<T> u = h;
    const auto t0 = Clock::now();
    if (!mcw::inverse_cholesky_upper_in_place(u.data(), kDim))
      state.SkipWithError("not positive definite");
    state.SetIterationTime(seconds_since(t0));
  }
  // Cholesky + triangular inverse: n³/3 + n³/3 flops.
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(kDim) * kDim * kDim / 3.0 * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
void BM_InverseHessianFactor4096(benchmark::State& state) {
  if (state.range(0) == 0) return inverse_factor<double>(state);
  inverse_factor<float>(state);
  state.SetLabel("f32");
}
BENCHMARK(BM_InverseHessianFactor4096)->Arg(0)->Arg(1)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

}  // namespace

int main(int argc, char** argv) {
  mcw::restart_with_huge_page_malloc(argv);  // as mcw runs: GPTQ's buffers are tens of MiB
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
