// mcw synth: a random model in the exact shape of a real one (engine/model/synth_model.h),
// for measuring memory and time at real size without downloading weights.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "app/cli/progress_bar.h"
#include "engine/model/synth_model.h"

namespace mcw::cli {

const char* const kSynthUsage =
    "usage: mcw synth --shape SHAPE --out DIR [--seed S] [--layers L]\n"
    "                 [--outliers N] [--outlier-scale F]\n\n"
    "Writes a Hugging Face model directory (config.json, model.safetensors in bf16 and a\n"
    "byte-level mcw_tokenizer.json) with random weights in the exact shape of a real model:\n"
    "  llama-3.2-1b  1.24 B parameters, 2.47 GB (2048 hidden, 16 layers, tied, llama3 rope)\n"
    "  llama-3-8b    8.03 B parameters, 16.1 GB (4096 hidden, 32 layers)\n"
    "  qwen2.5-0.5b  0.49 B parameters, 0.99 GB (896 hidden, 24 layers, q/k/v biases, tied)\n"
    "  phi-3-mini-4k 3.82 B parameters, 7.64 GB (3072 hidden, 32 layers, fused qkv_proj and\n"
    "                gate_up_proj, sliding window 2047)\n"
    "  gpt2-xl       1.56 B parameters, 3.12 GB (1600 hidden, 48 layers, GPT2LMHeadModel's\n"
    "                Conv1D weights and fused c_attn, learned positions, tied)\n"
    "  tiny          a 64-wide, 2-layer model for tests\n"
    "Weights are scaled like a trained model's, so a forward pass gives sensible logits, and\n"
    "N hidden dimensions carry LLM.int8()-style outlier features: at every linear layer's\n"
    "input they are F times the rest (`mcw activations` shows them). The vocabulary keeps the\n"
    "real size; the tokenizer uses its first 258 ids. The output is written tensor by\n"
    "tensor, in constant memory, and appears only when complete.\n\n"
    "  --seed S           values are a function of S alone (default 0)\n"
    "  --layers L         this many decoder layers instead of the shape's\n"
    "  --outliers N       planted outlier dimensions (default 6; 0 for none)\n"
    "  --outlier-scale F  their size over the rest (default 50)\n";

int run_synth(const std::vector<std::string>& argv) {
  Args args(argv, {"shape", "out", "seed", "layers", "outliers", "outlier-scale"}, {});
  if (!args.positional().empty())
    throw UsageError{"synth takes no positional arguments (see mcw help synth)"};
  const auto shape = args.value("shape");
  const auto out = args.value("out");
  if (!shape || !out) throw UsageError{"synth needs --shape SHAPE and --out DIR"};
  SynthOptions o;
  o.shape = *shape;
  o.seed = uint64_t(args.int_or("seed", 0));
  o.layers = args.int_or("layers", 0);
  if (args.value("layers") && o.layers < 1) throw UsageError{"--layers must be at least 1"};
  o.outliers = args.int_or("outliers", o.outliers);
  o.outlier_scale = args.number_or("outlier-scale", o.outlier_scale);
  const SynthPlan plan = plan_synth_model(o);

  const SigintCancel sigint;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    ProgressBar bar("synth " + plan.shape);
    write_synth_model(plan, *out, bar.callback(), &sigint.token());
  } catch (const Cancelled&) {
    std::fprintf(stderr, "mcw: synth cancelled; nothing written to %s\n", out->c_str());
    return 130;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %s, %s parameters, %s in %.1f s\n", out->c_str(), plan.shape.c_str(),
              human_count(plan.parameter_count()).c_str(), human_bytes(plan.data_bytes()).c_str(),
              s);
  return 0;
}

}  // namespace mcw::cli
