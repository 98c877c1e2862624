// `mcw bench`: how fast a model generates on this machine, the way llama-bench reports it:
// prefill tokens/s and decode tokens/s, on the kernels a deployment would run (packed
// low-bit weights for a compressed model, f16 or f32 for a dense one).
#include <tbb/global_control.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "app/cli/progress_bar.h"
#include "engine/compress/compress_llama.h"
#include "engine/core/error.h"
#include "engine/model/causal_lm.h"
#include "engine/eval/packed_llama.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/packed_weight.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/model/tokenizer_loader.h"
#include "engine/runs/process_identity.h"

namespace mcw::cli {

const char* const kBenchUsage =
    "usage: mcw bench <model> [--recipe R [--calib TEXT]] [--prefill N] [--decode N]\n"
    "                 [--repeats R] [--threads T] [--f32] [--exact-activations] [--json]\n\n"
    "Measures a prefill of N tokens (default 64) and D greedy decode steps (default 32) on\n"
    "the KV cache, R times (default 5), and prints the medians: prefill tokens/s, decode\n"
    "tokens/s and ms per token, and the weight bytes one decode step streams (with the\n"
    "bandwidth that implies). Linear layers run on the packed kernels: f16 for a dense\n"
    "model (f32 with --f32), and with --recipe the compressed layout of each layer (4-bit\n"
    "codes stream 4 bits per weight). Recipes that need statistics need --calib.\n"
    "  --threads T   worker threads (default: all cores)\n"
    "  --exact-activations  quantised weights (GGUF blocks, GPTQ, AWQ, compressed-tensors,\n"
    "                MCW's packed layouts) multiply f32 activations instead of int8 ones\n"
    "                (llama.cpp's way and the default: faster, each product off by at most\n"
    "                sum|w|*dx/2)\n";

int run_bench(const std::vector<std::string>& argv) {
  Args args(argv, {"recipe", "calib", "prefill", "decode", "repeats", "threads"}, {"f32", "json", "exact-activations"});
  if (args.positional().size() != 1) throw UsageError{"bench takes one model path (see mcw help bench)"};
  set_int8_activations(!args.flag("exact-activations"));
  std::unique_ptr<tbb::global_control> threads;
  const long long n_threads = args.int_or("threads", 0);
  if (n_threads > 0)
    threads = std::make_unique<tbb::global_control>(
        tbb::global_control::max_allowed_parallelism, size_t(n_threads));
  LatencyOptions lo;
  lo.prefill = args.int_or("prefill", 64);
  lo.decode = args.int_or("decode", 32);
  lo.repeats = int(args.int_or("repeats", 5));
  if (lo.prefill < 1 || lo.decode < 1 || lo.repeats < 1)
    throw UsageError{"--prefill, --decode and --repeats must be at least 1"};

  const ModelFile file = open_model_file(args.positional()[0]);
  const LlamaModel base = load_llama(file);
  CompressionResult compressed;
  // f32 weights (a model built in memory or saved so) run as f16 or f32; any other dtype
  // runs as the file stores it.
  const DType stored = base.layers.empty() ? DType::F32 : base.layers[0].wq.dtype();
  std::string what = stored != DType::F32 ? "dense " + std::string(dtype_name(stored)) + " as stored"
                     : args.flag("f32")   ? "dense f32"
                                          : "dense f16";
  if (const auto r = args.value("recipe")) {
    const Recipe recipe = load_recipe(resolve_recipe(*r));
    check_targets(recipe, base.tensor_names());
    std::vector<int32_t> calib;
    if (recipe_needs_calibration(recipe)) {
      const auto calib_path = args.value("calib");
      if (!calib_path)
        throw UsageError{"recipe '" + recipe.name + "' needs calibration text: add --calib TEXT"};
      calib = load_tokenizer(file)->encode(read_text_file(*calib_path), false);
    }
    const SigintCancel sigint;
    {
      ProgressBar bar("compress");
      compressed = compress_llama(base, recipe, calib, {}, bar.callback(), &sigint.token());
    }
    what = recipe.name;
  }
  PackedLlamaOptions po;
  po.uncompressed_f16 = !args.flag("f32");
  const PackedLlama model(compressed.layers.empty() ? base : compressed.model, compressed.layers,
                          po);
  const LatencyResult r = measure_latency(model, lo);
  const double decode_s = r.ms_per_token / 1e3;
  if (args.flag("json")) {
    const nlohmann::json j = {{"model", file.path},
                              {"weights", what},
                              {"prefill", r.prefill},
                              {"decode", r.decode},
                              {"prefill_tokens_per_s", r.prefill_tokens_per_s},
                              {"decode_tokens_per_s", 1.0 / decode_s},
                              {"ms_per_token", r.ms_per_token},
                              {"weight_bytes", model.weight_bytes()},
                              {"paths", model.paths()}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model     %s (%s parameters), %s\n", file.path.c_str(),
              human_count(base.parameter_count()).c_str(), what.c_str());
  std::printf("machine   %s, %s kernels, %s threads, %s activations for quantised weights\n",
              cpu_model().c_str(), packed_gemv_path(),
              n_threads > 0 ? std::to_string(n_threads).c_str() : "all",
              int8_activations() ? "int8" : "f32");
  std::printf("prefill   %lld tokens: %.1f tokens/s\n", (long long)r.prefill,
              r.prefill_tokens_per_s);
  std::printf("decode    %lld steps: %.1f tokens/s (%.4g ms/token)\n", (long long)r.decode,
              1.0 / decode_s, r.ms_per_token);
  std::printf("weights   %s streamed per decode step, %.2f GB/s effective\n",
              human_bytes(model.weight_bytes()).c_str(),
              double(model.weight_bytes()) / decode_s / 1e9);
  return 0;
}

}  // namespace mcw::cli
