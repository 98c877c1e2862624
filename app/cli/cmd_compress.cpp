// mcw compress: run a recipe on a model and write the result as a model directory that
// `mcw inspect` and `mcw eval` read back, plus compression.json (each layer's scheme,
// bits per weight and error) and packed.safetensors (the compressed layers themselves).
// Ctrl-C cancels; what was done stays in DIR.partial for --resume.
#include <tbb/global_control.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "app/cli/progress_bar.h"
#include "engine/compress/compress_llama.h"
#include "engine/core/memory_usage.h"
#include "engine/core/error.h"
#include "engine/model/causal_lm.h"
#include "engine/eval/perplexity.h"
#include "engine/compress/resource_estimate.h"
#include "engine/export/compress_to_directory.h"
#include "engine/model/tokenizer_loader.h"

namespace fs = std::filesystem;

namespace mcw::cli {

const char* const kCompressUsage =
    "usage: mcw compress <model> --recipe R --out DIR [--calib TEXT] [--eval TEXT]\n"
    "                    [--windows N] [--window L] [--resume] [--max-memory SIZE]\n"
    "                    [--json]\n\n"
    "Runs recipe R (a .yaml/.json file, or a preset name from assets/recipes such as\n"
    "w4g128-gptq) on <model>. Methods that need activation statistics (gptq, awq, kmeans,\n"
    "wanda, sparsegpt, activation-aware svd) run calibration windows of TEXT through the\n"
    "model block by block. Each block is written as soon as it is done (memory holds one\n"
    "block): DIR gets config.json, one model-*.safetensors shard per block and an index\n"
    "(the weights as the compressed form decodes them, in the source's dtype), the\n"
    "tokenizer, recipe.yaml, compression.json and\n"
    "packed.safetensors: each compressed layer's packed codes, scales, zero points,\n"
    "codebooks, masks, outliers or low-rank factors, with its scheme as JSON under the\n"
    "'mcw.packed' metadata key (mcw inspect DIR lists it per layer).\n\n"
    "  --windows N, --window L  calibration windows and their length in tokens\n"
    "                           (defaults: the recipe's, else 64 x 256)\n"
    "  --eval TEXT              afterwards, perplexity and KL against the original\n"
    "  --resume                 go on with a run that was stopped (killed, cancelled, out\n"
    "                           of disk): DIR.partial keeps a checkpoint after every\n"
    "                           block, and the resumed result is the uninterrupted one\n"
    "  --max-memory SIZE        refuse to start when the estimated peak memory is more\n"
    "                           (e.g. 8G; default: what the system has available)\n\n"
    "usage: mcw compress <model.onnx> --recipe R --out OUT.onnx [--calib SET] [--eval SET]\n"
    "                    [--windows N] [--keys FILE] [--json]\n\n"
    "An ONNX graph: the recipe's layer-wise stages (rtn, gptq, magnitude, wanda, sparsegpt,\n"
    "kmeans, svd) on its Conv, ConvTranspose, MatMul and Gemm weights (a stage without\n"
    "targets takes them all), and its `activations` section. SET is an OCR folder (`mcw\n"
    "ocr-lines` / `mcw ocr-pages` write them): --calib takes its first N images (default:\n"
    "the recipe's windows, else 64), --eval scores the original and the compressed graph\n"
    "(CER, or box recall and precision). OUT.onnx stores the codes and decodes them with\n"
    "standard operators; OUT.json has each layer's scheme, bits per weight and error.\n";

std::string resolve_recipe(const std::string& r) {
  if (fs::exists(r)) return r;
  for (const fs::path& dir : {fs::path(MCW_SOURCE_DIR) / "assets/recipes",
                             fs::canonical("/proc/self/exe").parent_path() / "../share/mcw/recipes"})
    for (const char* ext : {".yaml", ".json"})
      if (fs::exists(dir / (r + ext))) return (dir / (r + ext)).string();
  throw Error(r, "no such recipe file or preset (presets live in assets/recipes)");
}

int run_compress(const std::vector<std::string>& argv) {
  if (first_positional(
          argv, {"recipe", "out", "calib", "eval", "windows", "window", "max-memory", "keys"})
          .ends_with(".onnx"))  // layers and image sets, not text
    return run_compress_onnx(argv);
  Args args(argv, {"recipe", "out", "calib", "eval", "windows", "window", "max-memory"},
            {"json", "resume"});
  if (args.positional().size() != 1) throw UsageError{"compress takes one model path (see mcw help compress)"};
  const auto recipe_arg = args.value("recipe");
  const auto out_arg = args.value("out");
  if (!recipe_arg || !out_arg) throw UsageError{"compress needs --recipe R and --out DIR"};

  const Recipe recipe = load_recipe(resolve_recipe(*recipe_arg));
  const ModelFile file = open_model_file(args.positional()[0]);
  const LlamaModel base = load_llama(file);
  // Every mistake surfaces before the long work starts.
  check_targets(recipe, base.tensor_names());

  std::vector<int32_t> calib;
  std::unique_ptr<Tokenizer> tok;
  if (recipe_needs_calibration(recipe) || args.value("eval")) tok = load_tokenizer(file);
  if (recipe_needs_calibration(recipe)) {
    const auto calib_path = args.value("calib");
    if (!calib_path) throw UsageError{"recipe '" + recipe.name + "' needs calibration text: add --calib TEXT"};
    calib = tok->encode(read_text_file(*calib_path), false);
  }
  CompressOptions opt;
  opt.calib_windows = args.int_or("windows", opt.calib_windows);
  opt.calib_window = args.int_or("window", opt.calib_window);
  Recipe run = recipe;
  if (args.value("windows")) run.calibration["windows"] = opt.calib_windows;
  if (args.value("window")) run.calibration["window"] = opt.calib_window;

  const auto max_memory = args.value("max-memory");
  CompressToDirectory::Budget budget{memory_available(), {}};
  if (max_memory) budget = {parse_bytes(*max_memory, "max-memory"), "--max-memory"};
  // Fault injection for the resume test: a kill right after the N-th checkpoint.
  if (const char* kill_after = std::getenv("MCW_FAULT_KILL_AFTER_CHECKPOINT"))
    opt.block_done = [n = std::atoi(kill_after), seen = 0](const BlockDone& d, CompressionResult&) mutable {
      if (d.resumable && ++seen == n) std::raise(SIGKILL);
    };
  const bool resume = args.flag("resume");
  // Staged in <out>.partial with a checkpoint after every block; refused up front when the
  // estimate does not fit the budget.
  CompressToDirectory job(file, base, run, calib, opt, *out_arg,
                          resume ? CompressToDirectory::Resume::Required : CompressToDirectory::Resume::Never,
                          budget);
  if (job.resumed_from())
    std::fprintf(stderr, "mcw: resuming %s (%s)\n", job.staging_path().c_str(), job.resumed_from()->describe().c_str());
  const ResourceEstimate& need = job.estimate();
  const SigintCancel sigint;
  CompressionResult res;
  try {
    ProgressBar bar("compress");
    res = job.compress(bar.callback(), &sigint.token());
  } catch (const Cancelled&) {
    const std::string k = job.kept();
    std::fprintf(stderr, "mcw: compression cancelled; %s\n",
                 k.empty() ? ("nothing written to " + *out_arg).c_str() : (k + ": add --resume to go on").c_str());
    return 130;
  }

  nlohmann::ordered_json report;
  report["recipe"] = recipe.name;
  report["source_model"] = file.path;
  report["seconds"] = res.seconds;  // of this process: a resumed run's own time
  report["estimate"] = {{"peak_bytes", need.peak_bytes}, {"seconds", need.seconds}};
  if (job.resumed_from()) report["resumed_from"] = job.resumed_from()->describe();
  if (const ForwardTally& f = res.calibration_forward; f.seconds > 0) {
    // The calibration forward's speed against this machine's GEMM peak, measured now.
    const double gflops = f.flops / f.seconds / 1e9, peak = measure_gemm_gflops(1024, 3);
    report["calibration_forward"] = {{"seconds", f.seconds}, {"gflop", f.flops / 1e9}, {"gflops", gflops},
                                     {"gemm_peak_gflops", peak}, {"fraction_of_peak", gflops / peak}};
  }
  report["parameters"] = res.parameters;
  report["bits_per_weight"] = res.bits_per_weight();
  report["storage_bytes"] = res.storage_bits / 8;
  report["original_bytes_f16"] = res.original_bits / 8;
  auto& layers = report["layers"] = nlohmann::ordered_json::array();
  for (const CompressedLayer& l : res.layers)
    layers.push_back({{"name", l.tensor.name}, {"algorithm", l.algorithm},
                      {"scheme", l.scheme}, {"bits_per_weight", l.bits_per_weight},
                      {"relative_error", l.relative_error},
                      {"error_on", l.error_on_activations ? "calibration activations" : "weights"}});
  if (const auto eval_path = args.value("eval")) {
    const auto ids = tok->encode(read_text_file(*eval_path), false);
    EvalOptions eo;
    eo.window = eo.stride = default_eval_window(base.cfg.max_seq_len);
    ProgressBar bar("eval");
    const EvalResult er = evaluate(res.model, ids, eo, &base, bar.callback(), &sigint.token());
    report["eval"] = {{"text", *eval_path}, {"window", eo.window}, {"perplexity", er.perplexity},
                      {"kl", er.kl}, {"top1_agreement", er.top1}};
  }

  if (sigint.token().cancelled()) return 130;
  job.finish(res, {{"compression.json", report.dump(2) + "\n"}});

  if (args.flag("json")) {
    std::printf("%s\n", report.dump(2).c_str());
    return 0;
  }
  size_t w = 4;
  for (const CompressedLayer& l : res.layers) w = std::max(w, l.tensor.name.size());
  std::printf("%-*s  %-28s %8s %12s\n", int(w), "layer", "scheme", "bits/w", "rel. error");
  for (const CompressedLayer& l : res.layers)
    std::printf("%-*s  %-28s %8.3f %12.3e\n", int(w), l.tensor.name.c_str(), l.scheme.c_str(),
                l.bits_per_weight, l.relative_error);
  std::printf("\nmodel         %s parameters, %.3f bits per weight, %s (f16: %s)\n",
              human_count(res.parameters).c_str(), res.bits_per_weight(),
              human_bytes(res.storage_bits / 8).c_str(), human_bytes(res.original_bits / 8).c_str());
  if (report.contains("eval"))
    std::printf("eval          perplexity %.4f, KL %.5f, top-1 agreement %.2f%%\n",
                report["eval"]["perplexity"].get<double>(), report["eval"]["kl"].get<double>(),
                100 * report["eval"]["top1_agreement"].get<double>());
  std::printf("wrote         %s in %s\n", out_arg->c_str(), human_duration(res.seconds).c_str());
  return 0;
}

}  // namespace mcw::cli
