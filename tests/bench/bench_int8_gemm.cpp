// Products at large m on weights that stay in cache: PP-OCRv4's convolutions (a tile of 256
// output pixels against a pointwise or 1 × 3 filter bank) and its CTC head (40 time steps
// against 6625 classes). Three ways for the same 4-bit per-channel weight, 2 threads:
//   path 0: the decoded f32 weight on the f32 GEMM (matmul_wt);
//   path 1: PackedWeight's Affine layout, int8 activations 8 rows per pass (packed_weight.h);
//   path 2: Int8GemmWeight's tiles (int8_gemm.h), x rounded once per product.
// Args: shape index (kShapes), path. GMAC/s = rows · cols · m / time.
#include <benchmark/benchmark.h>

#include <random>

#include "../engine/quant_test_util.h"
#include "engine/compress/rtn.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/int8_gemm.h"
#include "engine/kernels/packed_weight.h"

using namespace mcw;

namespace {

struct Shape {
  int64_t rows, cols, m;
};
constexpr Shape kShapes[] = {{480, 480, 256}, {240, 240, 256}, {64, 64, 256},
                             {60, 2880, 40},  {6625, 120, 40}, {4096, 4096, 64}};

using quant_test::gaussian;

void BM_LargeM(benchmark::State& state) {
  const Shape s = kShapes[state.range(0)];
  const int path = int(state.range(1));
  const std::vector<float> w = gaussian(size_t(s.rows * s.cols), 1);
  const std::vector<float> x = gaussian(size_t(s.m * s.cols), 2);
  std::vector<float> y(size_t(s.m * s.rows));
  RtnOptions rtn;
  rtn.bits = 4, rtn.scope = QuantScope::PerChannel;
  const CompressedTensor t = quantize_rtn(w.data(), s.rows, s.cols, rtn);
  const Tensor decoded = t.dequantize();
  const PackedWeight packed = PackedWeight::from_compressed(t);
  const std::optional<Int8GemmWeight> gemm = Int8GemmWeight::from_compressed(t);
  if (path == 2 && !int8_gemm_fast()) return state.SkipWithError("no AVX-512 VNNI here");
  for (auto _ : state) {
    if (path == 0)
      matmul_wt(x.data(), decoded.as<float>(), y.data(), s.m, s.rows, s.cols);
    else if (path == 1)
      packed.matmul(x.data(), y.data(), s.m);
    else
      gemm->matmul(x.data(), s.cols, y.data(), s.rows, s.m);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::to_string(s.rows) + "x" + std::to_string(s.cols) +
                 " m=" + std::to_string(s.m) +
                 (path == 0   ? " f32 GEMM"
                  : path == 1 ? " PackedWeight"
                              : " Int8Gemm"));
  state.counters["GMAC/s"] = benchmark::Counter(double(s.rows * s.cols * s.m) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_LargeM)
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime()
    ->MinTime(0.5);
BENCHMARK_MAIN();
