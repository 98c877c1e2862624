// mcw train: trains a small llama-family model from scratch on the fortune corpus and
// writes a Hugging Face style directory. Everything is written into a staging directory
// beside the output and renamed into place at the end, so a cancel (Ctrl-C) or an error
// leaves nothing under the output directory.
#include <tbb/global_control.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "app/cli/progress_bar.h"
#include "engine/core/error.h"
#include "engine/io/staging_dir.h"
#include "engine/model/llama_save.h"
#include "engine/model/byte_tokenizer.h"
#include "engine/train/corpus.h"
#include "engine/train/train_config.h"

namespace fs = std::filesystem;

namespace mcw::cli {

const char* const kTrainUsage =
    "usage: mcw train --config FILE [--out DIR] [--threads N]\n\n"
    "Trains a llama-family model from scratch on fortune(6) text (Debian's `fortunes`),\n"
    "byte-level tokens, holding out a seeded share of the entries for evaluation. FILE is\n"
    "JSON with sections model, training, corpus and the key out, for example:\n"
    "  {\"model\": {\"dim\": 128, \"hidden_dim\": 352, \"n_layers\": 4, \"n_heads\": 4,\n"
    "             \"n_kv_heads\": 2, \"seq_len\": 128},\n"
    "   \"training\": {\"steps\": 2000, \"batch\": 16, \"lr\": 1e-3, \"warmup\": 100},\n"
    "   \"corpus\": {\"dir\": \"/usr/share/games/fortunes\"}, \"out\": \"runs/fortunes\"}\n"
    "(all keys: engine/train/train_config.h). The output directory gets config.json,\n"
    "model.safetensors, tokenizer.json, eval.txt (held-out text), calib.txt (128 KiB of\n"
    "training text for calibration), train_log.jsonl and\n"
    "train_config.json. Ctrl-C stops cleanly and writes nothing.\n\n"
    "  --out DIR     output directory (overrides the config's out)\n"
    "  --threads N   worker threads (default: all cores)\n";

namespace {

nlohmann::ordered_json step_json(const TrainStep& s) {
  nlohmann::ordered_json j;
  j["step"] = s.step;
  j["loss"] = s.loss;
  if (s.eval_loss) j["eval_loss"] = *s.eval_loss;
  j["lr"] = s.lr;
  j["grad_norm"] = s.grad_norm;
  j["tokens_per_second"] = s.tokens_per_second;
  j["seconds"] = s.seconds;
  return j;
}

}  // namespace

int run_train(const std::vector<std::string>& argv) {
  Args args(argv, {"config", "out", "threads"}, {});
  if (!args.positional().empty())
    throw UsageError{"train takes no positional arguments (see mcw help train)"};
  const auto config_path = args.value("config");
  if (!config_path) throw UsageError{"train needs --config FILE (see mcw help train)"};
  std::unique_ptr<tbb::global_control> threads;
  if (const long long n = args.int_or("threads", 0); n > 0)
    threads = std::make_unique<tbb::global_control>(
        tbb::global_control::max_allowed_parallelism, size_t(n));

  TrainRunConfig cfg = parse_train_config(*config_path);
  if (auto out = args.value("out")) cfg.out_dir = *out;
  const fs::path out = fs::path(cfg.out_dir).lexically_normal();

  const CorpusSplit corpus =
      load_fortune_corpus(cfg.corpus_dir, cfg.eval_fraction, cfg.corpus_seed, cfg.include_subdirs);
  const std::vector<int32_t> train_tokens = ByteTokenizer(false, false).encode(corpus.train_text, false);
  const std::vector<int32_t> eval_tokens = ByteTokenizer(false, false).encode(corpus.eval_text, false);
  std::printf("corpus   %s: %zu entries for training (%s tokens), %zu held out (%s tokens)\n",
              cfg.corpus_dir.c_str(), corpus.train.size(),
              human_count(train_tokens.size()).c_str(), corpus.eval.size(),
              human_count(eval_tokens.size()).c_str());
  const LlamaConfig& mc = cfg.model;
  std::printf("model    dim %lld, hidden %lld, %lld layers, %lld/%lld heads, seq %lld\n",
              (long long)mc.dim, (long long)mc.hidden_dim, (long long)mc.n_layers,
              (long long)mc.n_heads, (long long)mc.n_kv_heads, (long long)mc.max_seq_len);
  std::fflush(stdout);

  StagingDir staging(out);
  std::ofstream log(staging.file("train_log.jsonl"));

  const SigintCancel sigint;
  const CancelToken& cancel = sigint.token();
  auto on_step = [&](const TrainStep& s) {
    log << step_json(s).dump() << '\n';
    log.flush();
    if (s.step % cfg.log_every && s.step != s.total && !s.eval_loss) return;
    const double eta = s.seconds / double(s.step) * double(s.total - s.step);
    std::printf("step %*lld/%lld  loss %.4f", int(std::to_string(s.total).size()),
                (long long)s.step, (long long)s.total, s.loss);
    if (s.eval_loss) std::printf("  eval %.4f", *s.eval_loss);
    std::printf("  lr %.2e  %.0f tok/s  ETA %s\n", s.lr, s.tokens_per_second,
                human_duration(eta).c_str());
    std::fflush(stdout);
  };
  TrainResult result;
  try {
    result = train_llama(mc, train_tokens, eval_tokens, cfg.train, {}, &cancel, on_step);
  } catch (const Cancelled&) {
    std::fprintf(stderr, "mcw: training cancelled; nothing written to %s\n", out.c_str());
    return 130;
  } catch (const Error& e) {
    if (e.file().empty()) throw Error(*config_path, e.message());  // an option problem
    throw;
  }

  TokenizerFiles tok;
  tok.tokenizer_json = byte_tokenizer_json().dump(2) + "\n";
  save_llama_hf(result.model, staging.path().string(), tok);
  write_text_file(staging.file("eval.txt"), corpus.eval_text);
  // Calibration text for compression: a slice of the training split, never the held-out one.
  write_text_file(staging.file("calib.txt"), corpus.train_text.substr(0, 128 * 1024));
  {
    std::ifstream in(*config_path, std::ios::binary);
    write_text_file(staging.file("train_config.json"),
               std::string(std::istreambuf_iterator<char>(in), {}));
  }
  log.close();

  if (cancel.cancelled()) {  // Ctrl-C while writing: still leave nothing behind
    std::fprintf(stderr, "mcw: training cancelled; nothing written to %s\n", out.c_str());
    return 130;
  }
  staging.commit();
  const TrainStep& last = result.history.back();
  std::printf("wrote    %s (%s parameters, final loss %.4f", out.c_str(),
              human_count(result.model.parameter_count()).c_str(), last.loss);
  if (last.eval_loss) std::printf(", eval loss %.4f", *last.eval_loss);
  std::printf(")\n");
  return 0;
}

}  // namespace mcw::cli
