// mcw eval: perplexity of a model on a text file, and optionally KL divergence and top-1
// agreement against a baseline model on the same windows.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/progress_bar.h"
#include "engine/core/error.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/eval/perplexity.h"
#include "engine/train/lora.h"
#include "engine/train/lora_lm.h"
#include "engine/model/tokenizer_loader.h"

namespace mcw::cli {

const char* const kEvalUsage =
    "usage: mcw eval <model> --text FILE [--window N] [--stride S] [--max-tokens N]\n"
    "                [--baseline MODEL] [--adapter DIR] [--bf16-activations]\n"
    "                [--exact-activations] [--json]\n"
    "       mcw eval <recogniser.onnx> --images DIR [--keys FILE] [--max-lines N] [--show] "
    "[--json]\n\n"
    "An ONNX text recogniser (PaddleOCR's PP-OCR: [1, 3, 48, W] in, [1, T, classes]\n"
    "probabilities out) is scored on DIR's line images (PNG/JPEG) and DIR/labels.tsv (file,\n"
    "tab, text; `mcw ocr-lines` writes such a folder): character error rate and exact lines,\n"
    "greedy CTC over --keys (default: ppocr_keys_v1.txt beside the model).\n\n"
    "Perplexity of <model> (llama or GPT-2 family) on FILE with a sliding window (default:\n"
    "the model's context, at most 2048, the papers' setting; stride = window).\n"
    "Each token is scored once, where it is new, and never as a window's first token.\n"
    "With --baseline, also the mean KL divergence KL(baseline || model) and the share of\n"
    "positions where both models agree on the most likely next token.\n\n"
    "  --max-tokens N  evaluate only the first N tokens of the text\n"
    "  --bf16-activations  products with bf16 weights round their inputs to bf16 and run\n"
    "                  on AVX-512 BF16 (as llama.cpp does; about 2x faster prefill, each\n"
    "                  product off by up to 2^-8 relatively); ignored without AVX-512 BF16\n"
    "  --exact-activations  quantised weights (GGUF blocks, GPTQ, AWQ, compressed-tensors,\n"
    "                  MCW's packed layouts) multiply f32 activations instead of int8 ones\n"
    "                  (the default, as llama.cpp's perplexity runs GGUF types: several\n"
    "                  times faster, each product off by at most sum|w|*dx/2)\n"
    "  --adapter DIR   a LoRA adapter in HF PEFT's layout (mcw recover's adapter/), run\n"
    "                  beside the weights as stored (x*W' + s*(x*A')*B', no merged copy)\n"
    "  --json          print the result as JSON\n";

int run_eval(const std::vector<std::string>& argv) {
  for (const std::string& a : argv)  // an OCR recogniser: images, not text
    if (a.size() > 5 && a.ends_with(".onnx") && !a.starts_with("--")) return run_ocr_eval(argv);
  Args args(argv, {"text", "window", "stride", "max-tokens", "baseline", "adapter"},
            {"json", "bf16-activations", "exact-activations"});
  set_bf16_activations(args.flag("bf16-activations"));
  set_int8_activations(!args.flag("exact-activations"));
  if (args.positional().size() != 1) throw UsageError{"eval takes one model path (see mcw help eval)"};
  const auto text_path = args.value("text");
  if (!text_path) throw UsageError{"eval needs --text FILE"};
  const ModelFile file = open_model_file(args.positional()[0]);
  // With a LoRA adapter (HF PEFT's layout, as mcw recover writes it): kept apart, beside
  // the weights as stored (lora_lm.h), so that it costs no f32 copy at any size.
  std::optional<LlamaModel> base;
  std::optional<LoraAdapters> adapters;
  std::unique_ptr<CausalLm> model;
  if (const auto adapter = args.value("adapter")) {
    require_llama_family(file, "an adapter");
    base.emplace(load_llama(file));
    adapters.emplace(load_lora_peft(*adapter));
    model = lora_lm_view(*base, *adapters, *adapter);
  } else {
    model = load_causal_lm(file);
  }
  EvalOptions opt;
  opt.window = args.int_or("window", default_eval_window(model->context_length()));
  opt.stride = args.int_or("stride", opt.window);
  const auto tok = load_tokenizer(file);
  std::vector<int32_t> ids = tok->encode(read_text_file(*text_path), /*add_bos=*/false);
  if (const long long max = args.int_or("max-tokens", 0); max > 0 && size_t(max) < ids.size())
    ids.resize(size_t(max));
  if (ids.size() < 2) throw Error(*text_path, "the text has fewer than 2 tokens");
  // A learned position table ends at its last row: say so before any work starts.
  const int64_t longest = std::min<int64_t>(opt.window, int64_t(ids.size()));
  if (model->architecture() == "gpt2" && longest > model->context_length())
    throw Error(file.path, "a window of " + std::to_string(longest) + " tokens exceeds the model's " +
                               std::to_string(model->context_length()) + " positions: use --window " +
                               std::to_string(model->context_length()) + " or less");
  std::unique_ptr<CausalLm> baseline;
  if (auto b = args.value("baseline")) baseline = load_causal_lm(open_model_file(*b));

  const SigintCancel sigint;
  const CancelToken& cancel = sigint.token();
  EvalResult r;
  {
    ProgressBar bar("eval");
    r = evaluate(*model, ids, opt, baseline.get(), bar.callback(), &cancel);
  }
  if (args.flag("json")) {
    nlohmann::ordered_json j = {{"model", file.path}, {"text", *text_path},
                                {"window", opt.window}, {"stride", opt.stride},
                                {"tokens", ids.size()}, {"scored", r.scored},
                                {"nll", r.nll}, {"perplexity", r.perplexity},
                                {"tokens_per_second", r.tokens_per_second}};
    if (r.has_baseline) j["kl"] = r.kl, j["top1_agreement"] = r.top1;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("tokens       %zu (%lld scored, window %lld, stride %lld)\n", ids.size(),
              (long long)r.scored, (long long)opt.window, (long long)opt.stride);
  std::printf("perplexity   %.4f  (%.4f nats/token)\n", r.perplexity, r.nll);
  if (r.has_baseline) std::printf("KL           %.6f nats/token\ntop-1 agree  %.2f%%\n", r.kl, 100 * r.top1);
  std::printf("speed        %.0f tokens/s (%.2f s)\n", r.tokens_per_second, r.seconds);
  return 0;
}

}  // namespace mcw::cli
