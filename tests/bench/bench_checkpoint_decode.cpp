// A GPTQ checkpoint layer as MCW reads it (decoded from its parts on demand), at the
// Llama-3-8B down_proj shape 4096 × 14336, 4-bit, group 128: the whole-matrix decode and
// the products of the forward pass (decode m = 1, prefill m = 64), next to the same
// products on the layer stored as bf16 in the same run. Random codes: decode speed does
// not depend on the values.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "engine/io/compressed_tensors.h"
#include "engine/io/quantized_checkpoint.h"
#include "engine/kernels/stored_matmul.h"

namespace {

constexpr int64_t kOut = 4096, kIn = 14336, kGroup = 128;

mcw::Tensor random_i32(const std::string& name, mcw::Shape shape, uint32_t seed) {
  mcw::Tensor t = mcw::Tensor::zeros(mcw::DType::I32, std::move(shape), name);
  std::mt19937 rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) static_cast<uint32_t*>(t.mutable_data())[i] = rng();
  return t;
}

const mcw::Tensor& gptq_layer() {
  static const mcw::Tensor w = [] {
    mcw::ModelFile m;
    m.path = "bench";
    const int64_t groups = kIn / kGroup;
    m.tensors.push_back(random_i32("l.qweight", {kIn / 8, kOut}, 1));
    m.tensors.push_back(random_i32("l.qzeros", {groups, kOut / 8}, 2));
    mcw::Tensor s = mcw::Tensor::zeros(mcw::DType::F16, {groups, kOut}, "l.scales");
    for (int64_t i = 0; i < s.numel(); ++i) static_cast<uint16_t*>(s.mutable_data())[i] = 0x1c00;
    m.tensors.push_back(s);
    mcw::QuantizedCheckpointConfig cfg;
    mcw::present_quantized_layers(m, cfg);
    return m.tensors.front();
  }();
  return w;
}

// The same shape in AutoAWQ's GEMM layout (codes packed along the outputs).
const mcw::Tensor& awq_layer() {
  static const mcw::Tensor w = [] {
    mcw::ModelFile m;
    m.path = "bench";
    const int64_t groups = kIn / kGroup;
    m.tensors.push_back(random_i32("l.qweight", {kIn, kOut / 8}, 4));
    m.tensors.push_back(random_i32("l.qzeros", {groups, kOut / 8}, 5));
    mcw::Tensor s = mcw::Tensor::zeros(mcw::DType::F16, {groups, kOut}, "l.scales");
    for (int64_t i = 0; i < s.numel(); ++i) static_cast<uint16_t*>(s.mutable_data())[i] = 0x1c00;
    m.tensors.push_back(s);
    mcw::QuantizedCheckpointConfig cfg;
    cfg.method = mcw::QuantizedCheckpointConfig::Method::Awq;
    cfg.zeros_minus_one = false;
    mcw::present_quantized_layers(m, cfg);
    return m.tensors.front();
  }();
  return w;
}

// The same shape as compressed-tensors writes it (llm-compressor's pack-quantized int4, group
// 128, symmetric: codes packed along the inputs of each row).
const mcw::Tensor& ct_layer() {
  static const mcw::Tensor w = [] {
    mcw::ModelFile m;
    m.path = "bench";
    m.tensors.push_back(random_i32("l.weight_packed", {kOut, kIn / 8}, 6));
    mcw::Tensor s = mcw::Tensor::zeros(mcw::DType::F16, {kOut, kIn / kGroup}, "l.weight_scale");
    for (int64_t i = 0; i < s.numel(); ++i) static_cast<uint16_t*>(s.mutable_data())[i] = 0x1c00;
    m.tensors.push_back(s);
    mcw::Tensor shape = mcw::Tensor::zeros(mcw::DType::I64, {2}, "l.weight_shape");
    static_cast<int64_t*>(shape.mutable_data())[0] = kOut, static_cast<int64_t*>(shape.mutable_data())[1] = kIn;
    m.tensors.push_back(shape);
    const nlohmann::ordered_json weights = {{"num_bits", 4}, {"type", "int"}, {"symmetric", true},
                                            {"strategy", "group"}, {"group_size", kGroup}};
    const nlohmann::ordered_json config = {
        {"quant_method", "compressed-tensors"}, {"format", "pack-quantized"},
        {"config_groups", {{"group_0", {{"targets", {"Linear"}}, {"weights", weights}}}}}};
    mcw::present_compressed_tensors(m, config, "bench/config.json");
    return m.tensors.front();
  }();
  return w;
}

const mcw::Tensor& bf16_layer() {
  static const mcw::Tensor w = [] {
    mcw::Tensor t = mcw::Tensor::zeros(mcw::DType::BF16, {kOut, kIn}, "bf16");
    std::mt19937 rng(3);
    for (int64_t i = 0; i < t.numel(); ++i)
      static_cast<uint16_t*>(t.mutable_data())[i] = uint16_t(0x3c00 | (rng() & 0xff));
    return t;
  }();
  return w;
}

void BM_GptqDecodeWhole(benchmark::State& state) {
  std::vector<float> out(size_t(kOut * kIn));
  for (auto _ : state) gptq_layer().to_f32(out.data(), 0, out.size());
  state.counters["Mweights/s"] =
      benchmark::Counter(double(kOut * kIn) * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_GptqDecodeWhole)->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: m, and 1 for int8 activations (the default; where a path takes them) or 0 for the
// exact f32 path (--exact-activations).
void product(benchmark::State& state, const mcw::Tensor& w) {
  const int64_t m = state.range(0);
  std::vector<float> x(size_t(m * kIn), 0.01f), y(size_t(m * kOut));
  mcw::set_int8_activations(state.range(1) != 0);
  for (auto _ : state) mcw::matmul_wt_stored(x.data(), w, y.data(), m);
  mcw::set_int8_activations(true);
  state.SetLabel(state.range(1) ? "int8 switch on" : "int8 switch off");
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(m * kOut * kIn) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
void BM_GptqProduct(benchmark::State& state) { product(state, gptq_layer()); }
void BM_AwqProduct(benchmark::State& state) { product(state, awq_layer()); }
void BM_CtProduct(benchmark::State& state) { product(state, ct_layer()); }
void BM_Bf16Product(benchmark::State& state) { product(state, bf16_layer()); }
BENCHMARK(BM_GptqProduct)->Args({1, 1})->Args({1, 0})->Args({8, 1})->Args({8, 0})->Args({64, 1})->Args({64, 0})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AwqProduct)->Args({1, 1})->Args({1, 0})->Args({64, 1})->Args({64, 0})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CtProduct)->Args({1, 1})->Args({1, 0})->Args({64, 1})->Args({64, 0})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Bf16Product)->Args({1, 1})->Args({64, 1})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
