// GGUF block-type weights in the decode product (m = 1) at ggml's own benchmark shape
// (test-backend-ops perf MUL_MAT m=4096, n=1, k=14336): the int8-activation product on the
// blocks (block_gemv.h, matmul_wt_stored's default for m <= 8) next to the exact path (f32
// tiles decoded from the blocks) and an f16 weight, in one run. Random codes with small
// finite scales: the speed does not depend on the values.
//   BM_Int8/<type>/<m>, BM_F32Tiles/<type>/<m>: type = index into kTypes below, m = 0 for
//   one row (decode), 64 for prefill.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "engine/core/half.h"
#include "engine/core/tensor.h"
#include "engine/kernels/block_gemv.h"
#include "engine/kernels/stored_matmul.h"

namespace {

constexpr int64_t kOut = 4096, kIn = 14336;
constexpr mcw::DType kTypes[] = {mcw::DType::Q4_0, mcw::DType::Q8_0, mcw::DType::Q2_K,
                                 mcw::DType::Q3_K, mcw::DType::Q4_K, mcw::DType::Q5_K,
                                 mcw::DType::Q6_K, mcw::DType::IQ4_XS};

const mcw::Tensor& layer(mcw::DType t) {
  static std::vector<std::vector<uint8_t>> keep;
  static std::vector<std::pair<mcw::DType, mcw::Tensor>> made;
  for (const auto& [type, w] : made)
    if (type == t) return w;
  const auto info = mcw::dtype_info(t);
  std::vector<uint8_t>& raw = keep.emplace_back(size_t(kOut * kIn / info.block * info.block_bytes));
  std::mt19937 rng(7);
  for (auto& b : raw) b = uint8_t(rng());
  // Every f16 field of every type lies in the block's first 4 or last 2 bytes; small
  // values there keep the products finite (the values do not matter for speed).
  const uint16_t h = mcw::f32_to_f16(0.002f);
  for (size_t off = 0; off < raw.size(); off += size_t(info.block_bytes)) {
    std::memcpy(&raw[off], &h, 2), std::memcpy(&raw[off + 2], &h, 2);
    std::memcpy(&raw[off + size_t(info.block_bytes) - 2], &h, 2);
  }
  made.emplace_back(t, mcw::Tensor::view(t, {kOut, kIn}, raw.data(), raw.size(), nullptr, "w"));
  return made.back().second;
}

// m rows of x: state.range(1) when given (64: prefill), else 1.
void product(benchmark::State& state, const mcw::Tensor& w) {
  const int64_t m = state.range(1) ? state.range(1) : 1;
  std::vector<float> x(size_t(m * kIn)), y(size_t(m * kOut));
  std::mt19937 rng(3);
  std::normal_distribution<float> d;
  for (float& v : x) v = d(rng);
  for (auto _ : state) mcw::matmul_wt_stored(x.data(), w, y.data(), m);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(m * kOut * kIn) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] = benchmark::Counter(double(w.nbytes()) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Int8(benchmark::State& state) {
  const mcw::Tensor& w = layer(kTypes[state.range(0)]);
  state.SetLabel(std::string(mcw::dtype_name(w.dtype())));
  mcw::set_int8_activations(true);
  product(state, w);
}
void BM_F32Tiles(benchmark::State& state) {
  const mcw::Tensor& w = layer(kTypes[state.range(0)]);
  state.SetLabel(std::string(mcw::dtype_name(w.dtype())));
  mcw::set_int8_activations(false);
  product(state, w);
  mcw::set_int8_activations(true);
}
void BM_F16(benchmark::State& state) {
  static const mcw::Tensor w = [] {
    mcw::Tensor t = mcw::Tensor::zeros(mcw::DType::F16, {kOut, kIn}, "f16");
    std::fill_n(static_cast<uint16_t*>(t.mutable_data()), t.numel(), mcw::f32_to_f16(0.01f));
    return t;
  }();
  product(state, w);
}

// Args: type index, m (0: 1).
void types(benchmark::internal::Benchmark* b) {
  for (int64_t t = 0; t < 8; ++t) b->Args({t, 0});
  for (int64_t t : {0, 4, 6}) b->Args({t, 64});  // prefill: Q4_0, Q4_K, Q6_K
  b->Args({4, 8})->Args({4, 512});                 // Q4_K at ggml's other perf shapes
}
// x rounded to int8 once per product (every int8 path pays it): 14336 inputs, blocks of
// state.range(0) values.
void BM_QuantizeActivations(benchmark::State& state) {
  std::mt19937 rng(5);
  std::normal_distribution<float> n;
  std::vector<float> x(14336);
  for (float& v : x) v = n(rng);
  mcw::Int8Activations q;
  for (auto _ : state) {
    mcw::quantize_activations(x.data(), int64_t(x.size()), state.range(0), q);
    benchmark::DoNotOptimize(q.q.data());
  }
}
BENCHMARK(BM_QuantizeActivations)->Arg(32)->Arg(128)->Arg(256)->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_Int8)->Apply(types)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_F32Tiles)->Apply(types)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_F16)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
