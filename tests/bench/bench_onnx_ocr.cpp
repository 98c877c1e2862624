// PP-OCRv4 through MCW's ONNX runner: one text line through the recogniser ([1, 3, 48, 320])
// and one 640 × 480 page through the detector, 2 threads by default (oneTBB's arena is the
// process's). The models come from the installer (assets/models/ppocr); a missing model
// skips its benchmark.
#include <benchmark/benchmark.h>

#include <cmath>
#include <filesystem>
#include <optional>

#include "engine/onnx/onnx_runner.h"

using namespace mcw;

namespace {

void run_model(benchmark::State& state, const char* file, Shape shape) {
  const std::string path = std::string(MCW_SOURCE_DIR) + "/assets/models/ppocr/" + file;
  if (!std::filesystem::exists(path))
    return state.SkipWithError("run installer/deps-debian.sh first");
  const OnnxModel m = read_onnx(path);
  const OnnxRunner runner(m);
  OnnxValue x = OnnxValue::floats(shape);
  for (size_t k = 0; k < x.f.size(); ++k) x.f[k] = float(std::sin(double(k) * 0.01));
  std::map<std::string, double> seconds;  // per operator type, reported as ms per run
  for (auto _ : state)
    benchmark::DoNotOptimize(
        runner.run({{m.graph.inputs[0].name, x}}, {.profile = &seconds, .observe = {}}));
  for (const auto& [op, t] : seconds)
    state.counters[op + "_ms"] = 1e3 * t / double(state.iterations());
}

void BM_RecogniseLine(benchmark::State& state) {
  run_model(state, "ch_PP-OCRv4_rec_infer.onnx", {1, 3, 48, 320});
}
void BM_DetectPage(benchmark::State& state) {
  run_model(state, "ch_PP-OCRv4_det_infer.onnx", {1, 3, 480, 640});
}

}  // namespace

BENCHMARK(BM_RecogniseLine)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_DetectPage)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_MAIN();
