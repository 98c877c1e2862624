// Encoding f32 rows into GGUF block types (from_f32: what `mcw export --format gguf` does per
// row), one thread, on gaussian values: MB of f32 input per second. The encoders are ggml's
// reference algorithms (kquant_encode.cpp), so ggml's quantize_row_*_ref built beside MCW is
// the comparison (docs/PERFORMANCE.md).
//   BM_Encode/<type>: type = index into kTypes below.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "engine/core/blocks.h"
#include "engine/core/dtype.h"

namespace {

constexpr mcw::DType kTypes[] = {mcw::DType::Q8_0, mcw::DType::Q4_0, mcw::DType::Q4_1,
                                 mcw::DType::Q5_0, mcw::DType::Q5_1, mcw::DType::Q4_K,
                                 mcw::DType::Q5_K, mcw::DType::Q6_K};
constexpr size_t kValues = 1 << 20;  // 4 MB of f32: 256 rows of 4096

void BM_Encode(benchmark::State& state) {
  const mcw::DType t = kTypes[state.range(0)];
  std::vector<float> x(kValues);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (float& v : x) v = nd(rng);
  const auto info = mcw::dtype_info(t);
  std::vector<uint8_t> out(kValues / size_t(info.block) * size_t(info.block_bytes));
  for (auto _ : state) {
    mcw::from_f32(t, x.data(), out.data(), kValues);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::string(mcw::dtype_name(t)));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kValues * sizeof(float)));
}
BENCHMARK(BM_Encode)->DenseRange(0, 7)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
