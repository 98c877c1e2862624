// PP-OCRv4 through MCW's ONNX runner: one text line through the recogniser ([1, 3, 48, 320])
// and one 640 × 480 page through the detector, 2 threads by default (oneTBB's arena is the
// process's). The models come from the installer (assets/models/ppocr); a missing model
// skips its benchmark.
//
// BM_RecogniseLineCompressed/<bits>/<group>/<packed>: the recogniser with every Conv, MatMul
// and Gemm weight rounded to nearest (bits, group size; 0: one grid per output channel),
// run as decoded f32 weights (packed 0: what the written file computes, on the f32 GEMM) or
// on the packed kernels (1: onnx_packed.h, int8 activations). RTN, since the layout and not
// the algorithm sets the speed.
//
// BM_RecogniseLineLayout/<k>: the packed graph of each layout QUALITY.md's presets give
// (kLayouts: the preset, and a stage that gives its layout; k-means and GPTQ calibrate on
// two synthetic lines, whose statistics do not change the layout), for the latency column
// of its table.
#include <benchmark/benchmark.h>

#include <cmath>
#include <filesystem>
#include <optional>

#include "engine/onnx/onnx_compress.h"
#include "engine/onnx/onnx_runner.h"

using namespace mcw;

namespace {

void time_runs(benchmark::State& state, const OnnxModel& m, const OnnxRunner& runner, Shape shape) {
  OnnxValue x = OnnxValue::floats(shape);
  for (size_t k = 0; k < x.f.size(); ++k) x.f[k] = float(std::sin(double(k) * 0.01));
  std::map<std::string, double> seconds;  // per operator type, reported as ms per run
  for (auto _ : state)
    benchmark::DoNotOptimize(
        runner.run({{m.graph.inputs[0].name, x}}, {.profile = &seconds, .observe = {}}));
  for (const auto& [op, t] : seconds)
    state.counters[op + "_ms"] = 1e3 * t / double(state.iterations());
}

std::optional<OnnxModel> load(benchmark::State& state, const char* file) {
  const std::string path = std::string(MCW_SOURCE_DIR) + "/assets/models/ppocr/" + file;
  if (!std::filesystem::exists(path)) {
    state.SkipWithError("run installer/deps-debian.sh first");
    return std::nullopt;
  }
  return read_onnx(path);
}

void run_model(benchmark::State& state, const char* file, Shape shape) {
  if (const std::optional<OnnxModel> m = load(state, file))
    time_runs(state, *m, OnnxRunner(*m), shape);
}

void BM_RecogniseLine(benchmark::State& state) {
  run_model(state, "ch_PP-OCRv4_rec_infer.onnx", {1, 3, 48, 320});
}
void BM_DetectPage(benchmark::State& state) {
  run_model(state, "ch_PP-OCRv4_det_infer.onnx", {1, 3, 480, 640});
}

void BM_RecogniseLineCompressed(benchmark::State& state) {
  const std::optional<OnnxModel> m = load(state, "ch_PP-OCRv4_rec_infer.onnx");
  if (!m) return;
  const std::string recipe =
      "stages:\n  - algorithm: rtn\n    bits: " + std::to_string(state.range(0)) +
      "\n    group_size: " + std::to_string(state.range(1)) + "\n";
  const OnnxCompression c = compress_onnx(*m, parse_recipe(recipe, "bench"), {});
  time_runs(state, *m, compressed_runner(*m, c, state.range(2) != 0), {1, 3, 48, 320});
}

struct Layout {
  const char* presets;
  const char* stage;
};
constexpr Layout kLayouts[] = {
    {"w8a8-static (weights)", "rtn\n    bits: 8\n    group_size: 0\n    symmetric: true"},
    {"w4g128-rtn, -gptq-paper", "rtn\n    bits: 4\n    group_size: 128"},
    {"w4-rtn-channel, w4-gptq-channel", "rtn\n    bits: 4\n    group_size: 0"},
    {"w3g64-rtn, -gptq", "rtn\n    bits: 3\n    group_size: 64"},
    {"w2g64-gptq", "rtn\n    bits: 2\n    group_size: 64"},
    {"kmeans-3bit", "kmeans\n    bits: 3"},
    {"sparse50-*", "magnitude\n    sparsity: 0.5"},
    {"svd-energy-0.9", "svd\n    energy: 0.9"},
    {"w4g128-gptq (act-order)",
     "gptq\n    bits: 4\n    group_size: 128\n    act_order: true\n    static_groups: true"},
    {"w2g64-gptq (act-order)",
     "gptq\n    bits: 2\n    group_size: 64\n    act_order: true\n    static_groups: true"},
    {"w2g64-gptq-outliers",
     "gptq\n    bits: 2\n    group_size: 64\n    act_order: true\n    static_groups: true\n"
     "    outlier_fraction: 0.01"},
};

void BM_RecogniseLineLayout(benchmark::State& state) {
  const std::optional<OnnxModel> m = load(state, "ch_PP-OCRv4_rec_infer.onnx");
  if (!m) return;
  const Layout& l = kLayouts[state.range(0)];
  const std::string recipe = std::string("stages:\n  - algorithm: ") + l.stage + "\n";
  std::vector<OnnxInputs> calib;
  for (double f : {0.01, 0.03}) {
    OnnxValue x = OnnxValue::floats({1, 3, 48, 320});
    for (size_t k = 0; k < x.f.size(); ++k) x.f[k] = float(std::sin(double(k) * f));
    calib.push_back({{m->graph.inputs[0].name, x}});
  }
  const OnnxCompression c = compress_onnx(*m, parse_recipe(recipe, "bench"), calib);
  time_runs(state, *m, compressed_runner(*m, c, true), {1, 3, 48, 320});
  state.SetLabel(l.presets);
}

}  // namespace

BENCHMARK(BM_RecogniseLineLayout)->DenseRange(0, 10)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_RecogniseLine)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_DetectPage)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_RecogniseLineCompressed)
    ->ArgNames({"bits", "group", "packed"})
    ->ArgsProduct({{8, 4}, {0, 128}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK_MAIN();
