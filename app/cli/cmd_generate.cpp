// mcw generate: continue a prompt with a model, token by token (greedy by default).
#include <chrono>
#include <cstdio>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/progress_bar.h"
#include "engine/model/causal_lm.h"
#include "engine/model/sampler.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/model/tokenizer_loader.h"

namespace mcw::cli {

const char* const kGenerateUsage =
    "usage: mcw generate <model> --prompt TEXT [--max-tokens N] [--temperature T]\n"
    "                    [--top-p P] [--seed S] [--exact-activations]\n\n"
    "Prints the prompt's continuation as it is generated, by a llama- or GPT-2-family\n"
    "model. Temperature 0 (the default) is greedy decoding; otherwise tokens are sampled\n"
    "from the nucleus of mass top-p. Quantised weights (GGUF blocks, GPTQ, AWQ,\n"
    "compressed-tensors) multiply int8 activations as llama.cpp does; --exact-activations\n"
    "keeps them f32 (slower, exact).\n";

int run_generate(const std::vector<std::string>& argv) {
  Args args(argv, {"prompt", "max-tokens", "temperature", "top-p", "seed"}, {"exact-activations"});
  set_int8_activations(!args.flag("exact-activations"));
  if (args.positional().size() != 1) throw UsageError{"generate takes one model path"};
  const ModelFile file = open_model_file(args.positional()[0]);
  const auto model = load_causal_lm(file);
  const auto tok = load_tokenizer(file);
  SamplerOptions so;
  so.temperature = std::stod(args.value_or("temperature", "0"));
  so.top_p = std::stod(args.value_or("top-p", "1"));
  so.seed = uint64_t(args.int_or("seed", 0));
  Sampler sampler(so);
  const int64_t max_new = args.int_or("max-tokens", 128);

  std::vector<int32_t> ids = tok->encode(args.value_or("prompt", ""), /*add_bos=*/true);
  if (ids.empty()) ids.push_back(0);
  const int64_t cap = std::min<int64_t>(model->context_length(), int64_t(ids.size()) + max_new);
  if (int64_t(ids.size()) >= cap) throw UsageError{"the prompt fills the model's context"};
  const auto session = model->start(cap);
  std::vector<float> logits(size_t(model->vocab_size()));
  const SigintCancel sigint;
  const CancelToken& cancel = sigint.token();

  const auto t0 = std::chrono::steady_clock::now();
  session->forward(ids, nullptr, logits.data());
  int64_t produced = 0;
  while (session->size() < cap && !cancel.cancelled()) {
    const int32_t next = sampler.next(logits);
    if (next == tok->eos_id()) break;
    const std::string piece = tok->token_to_piece(next);  // raw bytes: the terminal joins
    std::fwrite(piece.data(), 1, piece.size(), stdout);    // characters split over tokens
    std::fflush(stdout);
    ++produced;
    session->forward(std::span(&next, 1), nullptr, logits.data());
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "\n[%lld tokens, %.1f tokens/s]\n", (long long)produced, double(produced) / s);
  return 0;
}

}  // namespace mcw::cli
