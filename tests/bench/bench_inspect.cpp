// `mcw inspect` speed on a generated multi-gigabyte safetensors file (a 7B-like stack of
// bf16 projections): time to open and list the file, time to the first statistics row,
// and statistics throughput over the whole file. The file is made once under
// $MCW_BENCH_DIR (default /tmp) and reused.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "engine/core/half.h"
#include "engine/io/model_file.h"
#include "engine/io/safetensors.h"
#include "engine/kernels/tensor_stats.h"

using namespace mcw;

static std::string bench_file() {
  const char* dir = std::getenv("MCW_BENCH_DIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/mcw_bench_inspect_2g.safetensors";
  if (std::filesystem::exists(path)) return path;
  std::vector<Tensor> ts;
  uint32_t state = 12345;
  auto fill = [&](Tensor& t) {
    auto* p = t.mutable_as<uint16_t>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      state = state * 1664525u + 1013904223u;  // cheap LCG: the values only need variety
      p[i] = f32_to_bf16(float(int32_t(state >> 8) - (1 << 23)) * 1e-9f);
    }
  };
  // 8 blocks of a 4096-wide model with a 14336 MLP: 8 × 218 M params ≈ 3.5 GB in bf16 is
  // too much for CI disks; 4 blocks ≈ 1.75 GB keeps "multi-gigabyte"-class sizes.
  for (int l = 0; l < 4; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (auto [name, rows, cols] : {std::tuple{"self_attn.q_proj.weight", 4096, 4096},
                                    {"self_attn.k_proj.weight", 1024, 4096},
                                    {"self_attn.v_proj.weight", 1024, 4096},
                                    {"self_attn.o_proj.weight", 4096, 4096},
                                    {"mlp.gate_proj.weight", 14336, 4096},
                                    {"mlp.up_proj.weight", 14336, 4096},
                                    {"mlp.down_proj.weight", 4096, 14336}}) {
      Tensor t = Tensor::zeros(DType::BF16, {rows, cols}, p + name);
      fill(t);
      ts.push_back(std::move(t));
    }
  }
  write_safetensors(path, ts);
  return path;
}

static void BM_OpenAndList(benchmark::State& state) {
  const std::string path = bench_file();
  for (auto _ : state) {
    ModelFile m = open_model_file(path);
    benchmark::DoNotOptimize(m.tensors.size());
  }
  state.counters["file_GB"] = double(std::filesystem::file_size(path)) / 1e9;
}

static void BM_TimeToFirstStatsRow(benchmark::State& state) {
  const std::string path = bench_file();
  for (auto _ : state) {
    ModelFile m = open_model_file(path);
    benchmark::DoNotOptimize(tensor_stats(m.tensors.front()).mean);
  }
}

static void BM_StatsWholeFile(benchmark::State& state) {
  const std::string path = bench_file();
  const ModelFile m = open_model_file(path);
  for (auto _ : state)
    for (const Tensor& t : m.tensors) benchmark::DoNotOptimize(tensor_stats(t).mean);
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(m.byte_count()));
}

BENCHMARK(BM_OpenAndList)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TimeToFirstStatsRow)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StatsWholeFile)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_MAIN();
