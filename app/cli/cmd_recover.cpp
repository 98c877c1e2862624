// mcw recover: recovery fine-tuning of a compressed model with low-rank adapters (LoRA or
// RoRA scaling), distilled from the uncompressed model when it is known, and the result
// written as a model directory (the adapters merged, and re-coded into the compressed
// layers' own schemes) plus the adapters in PEFT's layout and the recovery curve.
#include <tbb/global_control.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>

#include "app/cli/args.h"
#include "app/cli/block_ap_args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "app/cli/progress_bar.h"
#include "engine/core/error.h"
#include "engine/core/memory_usage.h"
#include "engine/core/sha256.h"
#include "engine/eval/perplexity.h"
#include "engine/export/packed_safetensors.h"
#include "engine/export/recovered_writer.h"
#include "engine/io/staging_dir.h"
#include "engine/model/causal_lm.h"
#include "engine/model/llama_save.h"
#include "engine/model/tokenizer_loader.h"
#include "engine/project/project.h"
#include "engine/recipe/recipe.h"
#include "engine/runs/fingerprint.h"
#include "engine/runs/run_export.h"
#include "engine/train/lora_lm.h"
#include "engine/train/recovery.h"
#include "engine/train/streamed_student.h"

namespace fs = std::filesystem;

namespace mcw::cli {

const char* const kRecoverUsage =
    "usage: mcw recover <model> --text TRAIN --out DIR [--eval TEXT] [--teacher MODEL]\n"
    "       mcw recover PROJECT --run ID --out DIR [--text TRAIN] [options]\n"
    "                   [--method lora|qat|block-ap] [--learn-zeros] [--no-distill]\n"
    "                   [--steps N] [--epochs N] [--train-windows N] [--val-windows N]\n"
    "                   [--quant-lr LR] [--weight-lr LR] [--paper]\n"
    "                   [--rank R] [--alpha A] [--scaling lora|rora] [--lr LR] [--batch B]\n"
    "                   [--window L] [--targets compressed|all] [--merge recode|dense|none]\n"
    "                   [--eval-every N] [--eval-windows N] [--seed S] [--max-memory SIZE]\n"
    "                   [--resume] [--checkpoint-every N] [--json]\n\n"
    "Wins back what compression lost: low-rank adapters (LoRA) on the compressed linears\n"
    "of <model> (a directory `mcw compress` wrote), trained on TRAIN with the compressed\n"
    "weights frozen as they deploy (packed.safetensors decoded). The loss is the KL from the\n"
    "uncompressed model's next-token distribution (distillation, no labels needed): the\n"
    "teacher is --teacher MODEL, or the source_model compression.json names; --no-distill\n"
    "trains on the text's next tokens instead. Held-out loss (and KL against the teacher)\n"
    "is measured on --eval TEXT (--eval-windows windows, default 16) before training and\n"
    "every --eval-every steps.\n\n"
    "LoRA works at any size: the frozen weights stay in their files (mapped) and packed, and\n"
    "one block at a time is decoded to f32 and recomputed in the backward pass, so a\n"
    "Llama-3-8B-shaped model recovers in a few GiB beside its files. QAT trains f32 copies\n"
    "of the layers and is for models that fit in memory as f32 twice over.\n\n"
    "DIR gets the recovered model (--merge recode, the default when <model> has packed\n"
    "layers: each adapter merged into its weight and re-coded on the layer's own grid —\n"
    "its scales, zero points and sparsity mask kept — with the error that adds reported;\n"
    "an update finer than a grid step rounds back, so the adapters kept apart do better;\n"
    "dense: merged weights in the model's dtype, no longer compressed; none: no model;\n"
    "either way written as `mcw compress` writes, one block at a time), adapter/ (the\n"
    "adapters as HF PEFT saves them: adapter_model.safetensors, adapter_config.json,\n"
    "use_rslora for RoRA) and recovery.json (the options, the curve and the final\n"
    "evaluation). Ctrl-C stops; what was done stays in DIR.partial for --resume.\n\n"
    "With --run, the model of a finished run of PROJECT (compressed again as the run was, as\n"
    "mcw export --run does) is recovered, distilled from the project's model, on --text or\n"
    "the project's calibration text.\n\n"
    "--method qat trains the quantised layers themselves instead (quantisation-aware\n"
    "training: fake-quantised weights, straight-through gradients, LSQ's learnable group\n"
    "scales; latent weights start at the teacher's): every packed layer must be affine\n"
    "(group-wise) quantised, and DIR gets them re-packed in the same layout. --learn-zeros\n"
    "learns the zero points too (LSQ+'s offset, continuous, stored in f16 like the scales).\n"
    "QAT holds f32 copies of the whole model: for the demo models.\n\n"
    "--method block-ap is QAT at any size: EfficientQAT's Block-AP, which trains one decoder\n"
    "block at a time — its latent weights, learnt scales and integer zero points, and norms —\n"
    "to reproduce the uncompressed block's output (the teacher is required) from the\n"
    "quantised model's stream, then packs it: one block in f32 beside the two streams, about\n"
    "7 GiB at the Llama-3-8B shape. --train-windows (128) and --val-windows (16) windows of\n"
    "--window tokens (256), --batch 2, --epochs 2, --quant-lr 1e-4 for scales and zeros,\n"
    "--weight-lr for weights and norms (default 2e-5 at 2 bits, 1e-5 above); --paper: the\n"
    "paper's 4096 + 64 windows of 2048 tokens. A checkpoint after every block: --resume.\n\n"
    "  --steps N         optimizer steps (default 200)\n"
    "  --rank R          adapter rank (default 8)\n"
    "  --alpha A         LoRA alpha (default 16)\n"
    "  --scaling S       lora: alpha/r (default); rora: alpha/sqrt(r), which keeps larger\n"
    "                    ranks from under-training\n"
    "  --lr LR           peak learning rate (default 1e-3; warm-up 10 steps, cosine to 10 %)\n"
    "  --batch B         windows per step (default 8)\n"
    "  --window L        tokens per window (default: the model's context, at most 256)\n"
    "  --resume          go on with a run that was stopped (DIR.partial keeps a checkpoint\n"
    "                    every --checkpoint-every steps, default 25); the result is the\n"
    "                    uninterrupted run's\n"
    "  --targets T       compressed: the layers packed.safetensors holds (default when\n"
    "                    present); all: every linear of every block; or a pattern as a\n"
    "                    recipe's targets take ('*mlp*', 're:layers\\.[0-3]\\.')\n"
    "  --max-memory SIZE refuse to start when the estimate is more (default: available)\n";

namespace {

nlohmann::ordered_json step_json(const RecoveryStep& s) {
  nlohmann::ordered_json j;
  j["step"] = s.step;
  if (s.step > 0) {
    j["loss"] = s.loss;
    j["lr"] = s.lr;
    j["grad_norm"] = s.grad_norm;
    j["seconds"] = s.seconds;
  }
  if (s.eval_loss) j["eval_loss"] = *s.eval_loss;
  if (s.eval_kl) j["eval_kl"] = *s.eval_kl;
  return j;
}

// The teacher compression.json names, when it still exists.
std::optional<std::string> source_model_of(const std::string& model_path) {
  const fs::path report = fs::path(model_path) / "compression.json";
  if (!fs::is_regular_file(report)) return std::nullopt;
  try {
    const auto j = nlohmann::json::parse(read_text_file(report.string()));
    if (j.contains("source_model") && j["source_model"].is_string() &&
        fs::exists(j["source_model"].get<std::string>()))
      return j["source_model"].get<std::string>();
  } catch (const nlohmann::json::exception&) {
  }
  return std::nullopt;
}

// The options that change a recovery's result (recovery.json and the checkpoint identity).
nlohmann::ordered_json report_options(const RecoveryOptions& o) {
  return {{"steps", o.steps},     {"batch", o.batch},   {"window", o.seq_len},
          {"lr", o.lr},           {"min_lr", o.min_lr}, {"warmup", o.warmup},
          {"rank", o.rank},       {"alpha", o.alpha},   {"scaling", lora_scaling_name(o.scaling)},
          {"distill", o.distill}, {"seed", o.seed},     {"learn_zeros", o.learn_zeros}};
}

nlohmann::ordered_json eval_json(const EvalResult& r, bool with_baseline) {
  nlohmann::ordered_json j{{"perplexity", r.perplexity}};
  if (with_baseline) j["kl"] = r.kl, j["top1_agreement"] = r.top1;
  return j;
}

}  // namespace

int run_recover(const std::vector<std::string>& argv) {
  Args args(argv, {"text",    "out",     "eval",  "teacher",    "method", "checkpoint-every",
                   "steps",   "rank",    "alpha", "scaling",    "lr",     "batch",
                   "window",  "targets", "merge", "eval-every", "seed",   "max-memory", "eval-windows",
                   "threads", "run", "epochs", "train-windows", "val-windows", "quant-lr",
                   "weight-lr"},
            {"no-distill", "json", "resume", "learn-zeros", "paper"});
  if (args.positional().size() != 1)
    throw UsageError{"recover takes one model path (see mcw help recover)"};
  auto text_arg = args.value("text");
  const auto out_arg = args.value("out");
  if (!out_arg) throw UsageError{"recover needs --out DIR"};
  std::unique_ptr<tbb::global_control> threads;
  if (const long long n = args.int_or("threads", 0); n > 0)
    threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    size_t(n));

  // A project's run: its model exported (compressed again as the run was) into a scratch
  // directory beside DIR; the project's model is the teacher and its calibration text the
  // default training text.
  std::string model_path = args.positional()[0];
  std::optional<ScratchDir> run_dir;
  std::optional<std::string> project_teacher;
  if (const auto run = args.value("run")) {
    const int64_t id = parse_run_id(*run, "recover --run");
    const Project project = load_project(model_path);
    run_dir.emplace(fs::absolute(fs::path(*out_arg)).parent_path(), ".mcw-recover");
    const std::string exported = (run_dir->path() / "model").string();
    {
      ProgressBar bar("export");
      RunExportOptions eo;
      eo.progress = bar.callback();
      export_run(model_path, id, exported, eo);
    }
    project_teacher = project.model_path;
    if (!text_arg && !project.calibration_path.empty()) text_arg = project.calibration_path;
    model_path = exported;
  }
  if (!text_arg) throw UsageError{"recover needs --text TRAIN"};
  const ModelFile file = open_model_file(model_path);
  require_llama_family(file, "recovery");
  LlamaModel model = load_llama(file);
  const auto tok = load_tokenizer(file);

  RecoveryOptions o;
  o.steps = args.int_or("steps", o.steps);
  o.rank = args.int_or("rank", o.rank);
  o.alpha = args.number_or("alpha", o.alpha);
  o.scaling = parse_lora_scaling(args.value_or("scaling", "lora"), "--scaling");
  o.lr = args.number_or("lr", o.lr);
  o.min_lr = o.lr / 10;
  o.batch = args.int_or("batch", o.batch);
  o.seq_len = args.int_or("window", std::min<int64_t>(256, model.cfg.max_seq_len));
  o.eval_every = args.int_or("eval-every", o.eval_every);
  // Held-out windows per evaluation of the curve (the teacher's probabilities for them stay
  // in memory: 2 GiB at Llama-3's vocabulary and 256 tokens for the default 16); none
  // without --eval.
  o.eval_windows = args.value("eval").has_value() ? args.int_or("eval-windows", o.eval_windows) : 0;
  if (args.value("eval").has_value() && o.eval_windows < 1)
    throw UsageError{"--eval-windows must be at least 1"};
  o.seed = uint64_t(args.int_or("seed", 1));
  o.distill = !args.flag("no-distill");
  o.learn_zeros = args.flag("learn-zeros");
  const std::string method = args.value_or("method", "lora");
  if (method != "lora" && method != "qat" && method != "block-ap")
    throw UsageError{"--method must be lora, qat or block-ap, got '" + method + "'"};
  const bool qat = method == "qat", block_wise = method == "block-ap";
  const bool trains_layers = qat || block_wise;  // the packed layers themselves
  if (qat) o.method = RecoveryOptions::Method::Qat;
  const BlockApOptions bo = block_ap_options(args, model.cfg.max_seq_len);

  // The packed layers' names only (their parts are read once the memory check passed).
  const std::string packed_path = find_packed_beside(model_path);
  std::set<std::string> packed_names;
  if (!packed_path.empty()) {
    const PackedSafetensorsReader reader(packed_path);
    for (size_t i = 0; i < reader.size(); ++i) packed_names.insert(reader.scheme(i).name);
  }
  const bool no_packed = packed_names.empty();

  if (trains_layers && no_packed)
    throw Error(model_path, "has no packed layers for quantisation-aware training");
  const std::string targets_arg = args.value_or("targets", no_packed ? "all" : "compressed");
  if (targets_arg == "compressed" && no_packed)
    throw Error(model_path, "has no packed.safetensors: use --targets all");
  std::vector<std::string> targets;
  try {
    for (const std::string& n : block_linear_names(model))
      if (targets_arg == "all"          ? true
          : targets_arg == "compressed" ? packed_names.count(n) > 0
                                        : pattern_matches(targets_arg, n))
        targets.push_back(n);
  } catch (const std::regex_error& e) {
    throw UsageError{"--targets: invalid regex '" + targets_arg + "': " + e.what()};
  }
  if (targets.empty())
    throw UsageError{"--targets " + targets_arg + " matches no linear of the model's blocks"};
  if (trains_layers)
    for (const std::string& n : targets)
      if (!packed_names.count(n))
        throw Error(model_path,
                    "quantisation-aware training needs packed layers, and " + n + " is not one");
  const std::string merge =
      trains_layers ? "qat" : args.value_or("merge", no_packed ? "dense" : "recode");
  if (!trains_layers && merge != "recode" && merge != "dense" && merge != "none")
    throw UsageError{"--merge must be recode, dense or none, got '" + merge + "'"};
  if (merge == "recode" && no_packed)
    throw Error(model_path, "has no packed layers to re-code: use --merge dense or none");

  std::optional<std::string> teacher_path = args.value("teacher");
  if (!teacher_path && (o.distill || block_wise))
    teacher_path = project_teacher ? project_teacher : source_model_of(model_path);
  std::optional<LlamaModel> teacher;
  std::optional<ModelFile> teacher_file;
  if (teacher_path) {
    teacher_file.emplace(open_model_file(*teacher_path));
    require_llama_family(*teacher_file, "a recovery teacher");
    teacher.emplace(load_llama(*teacher_file));
  } else if (block_wise) {
    throw Error(model_path,
                "Block-AP trains against the uncompressed model: give --teacher MODEL "
                "(compression.json names no source model that exists)");
  } else if (o.distill) {
    std::fprintf(stderr,
                 "mcw: no teacher (no --teacher, and compression.json names none that exists): "
                 "training on the text's next tokens\n");
  }

  // LoRA streams the model block by block beside its packed layers (read whole); QAT
  // trains f32 copies (recovery.h); Block-AP one block's (block_ap.h).
  const uint64_t packed_bytes = no_packed ? 0 : fs::file_size(packed_path);
  const uint64_t need = (block_wise ? block_ap_cost(model_shape(model.cfg), bo).bytes
                                    : recovery_memory_bytes(model, o)) +
                        (block_wise ? 2 : 1) * packed_bytes;  // Block-AP: the old and the new
  const auto max_memory = args.value("max-memory");
  const uint64_t budget = max_memory ? parse_bytes(*max_memory, "max-memory") : memory_available();
  if (budget > 0 && need > budget)
    throw Error(model_path,
                "recovery needs about " + human_bytes(need) +
                    (qat          ? " (f32 copies of the model and of the layers it trains, and "
                                    "a batch's activations)"
                     : block_wise ? " (the packed layers, the two streams of calibration windows "
                                    "and one block's f32 copies and optimizer state)"
                                  : " (the packed layers, one block's weights and activations, the saved "
                           "block inputs and the teacher's probabilities)") +
                    ", more than " + (max_memory ? "--max-memory " : std::string("the ")) +
                    human_bytes(budget) + (max_memory ? "" : " available") +
                    (qat ? "; --method block-ap trains one block at a time" : ""));

  // The compressed layers as they deploy: their packed codes, decoded as the student runs.
  std::vector<CompressedTensor> packed;
  if (!no_packed) packed = read_packed_safetensors(packed_path);

  const std::string train_text = read_text_file(*text_arg);
  const std::vector<int32_t> train = tok->encode(train_text, false);
  std::vector<int32_t> held_out;
  if (const auto e = args.value("eval")) held_out = tok->encode(read_text_file(*e), false);

  // Staged in DIR.partial with a checkpoint every --checkpoint-every steps, so that a run
  // stopped in any way goes on with --resume; what makes it the same run: the model, the
  // teacher, the training text and every option that changes the result.
  Sha256 text_hash;
  text_hash.update(train_text);
  nlohmann::json identity = report_options(o);
  identity["model"] = model_fingerprint(file);  // the content, packed layers included
  if (!packed_path.empty()) identity["packed"] = model_fingerprint(open_model_file(packed_path));
  identity["teacher"] = teacher_file ? model_fingerprint(*teacher_file) : "";
  identity["text_sha256"] = to_hex(text_hash.finish());
  identity["method"] = method;
  identity["targets"] = targets;
  if (block_wise) identity["block_ap"] = block_ap_options_json(bo);
  StagingDir staging{fs::path(*out_arg), StagingDir::Mode::Resumable};
  const std::string checkpoint_path = staging.file(
      block_wise ? "block_ap.checkpoint.safetensors" : "recovery.checkpoint.safetensors");
  if (!fs::is_empty(staging.path())) staging.keep_on_failure();  // never lose a stopped run's work
  std::optional<RecoveryCheckpoint> resume_from;
  std::optional<BlockApResult> blocks_done;
  if (args.flag("resume")) {
    if (!fs::exists(checkpoint_path))
      throw Error(staging.path().string(), "holds no stopped recovery to resume");
    staging.keep_on_failure();
    if (block_wise) {
      blocks_done = load_block_ap_checkpoint(checkpoint_path, identity.dump());
      std::fprintf(stderr, "mcw: resuming %s after block %zu\n", staging.path().c_str(),
                   blocks_done->blocks.size());
    } else {
      resume_from = load_recovery_checkpoint(checkpoint_path, identity.dump());
      o.resume = &*resume_from;
      std::fprintf(stderr, "mcw: resuming %s after step %lld\n", staging.path().c_str(),
                   (long long)resume_from->step);
    }
  } else if (fs::exists(checkpoint_path)) {
    throw Error(staging.path().string(),
                "holds a stopped recovery: add --resume to go on, or remove it");
  } else {
    staging.clear(), staging.keep_on_failure(false);  // nothing of a run to keep
  }
  o.checkpoint_every = args.int_or("checkpoint-every", 25);
  // Fault injection for the resume test: a kill right after the N-th checkpoint.
  const char* kill_after = std::getenv("MCW_FAULT_KILL_AFTER_CHECKPOINT");
  auto checkpointed = [&, seen = 0]() mutable {
    staging.keep_on_failure();  // never lose a stopped run's work
    if (kill_after && ++seen == std::atoi(kill_after)) std::raise(SIGKILL);
  };
  o.checkpoint = [&](const RecoveryCheckpoint& c) {
    save_recovery_checkpoint(checkpoint_path, c, identity.dump());
    checkpointed();
  };
  const SigintCancel sigint;
  RecoveryResult r;
  std::vector<BlockApBlock> block_figures;
  try {
    ProgressBar bar("recover");
    const LlamaModel* t = teacher ? &*teacher : nullptr;
    if (block_wise) {
      std::vector<CompressedTensor> chosen;  // a copy only when --targets chose fewer
      if (targets.size() != packed.size()) {
        const auto by_name = packed_by_name(model, packed, packed_path);
        for (const std::string& n : targets) chosen.push_back(*by_name.at(n));
      }
      BlockApResult ap = block_ap(
          *teacher, chosen.empty() ? std::span<const CompressedTensor>(packed) : chosen, train, bo,
          bar.callback(), &sigint.token(),
          [&](const BlockApResult& so_far) {
            save_block_ap_checkpoint(checkpoint_path, so_far, identity.dump());
            checkpointed();
          },
          blocks_done ? &*blocks_done : nullptr);
      r.quantized = std::move(ap.quantized), r.dense = std::move(ap.norms);
      block_figures = std::move(ap.blocks);
    } else if (qat) {
      std::vector<CompressedTensor> layers;
      const auto by_name = packed_by_name(model, packed, packed_path);
      for (const std::string& n : targets) layers.push_back(*by_name.at(n));
      LlamaModel decoded = model;  // views, with the packed layers decoded in (f32)
      decode_layers_into(decoded, packed, packed_path);
      r = recover_qat(decoded, t, layers, train, held_out, o, bar.callback(), &sigint.token());
    } else {
      r = recover_lora(model, packed, t, targets, train, held_out, o, bar.callback(),
                       &sigint.token(), {}, packed_path);
    }
  } catch (const Cancelled&) {
    if (fs::exists(checkpoint_path))
      std::fprintf(
          stderr,
          "mcw: recovery cancelled; its last checkpoint is kept in %s: add --resume to go on\n",
          staging.path().c_str());
    else
      std::fprintf(stderr, "mcw: recovery cancelled; nothing written to %s\n", out_arg->c_str());
    return 130;
  }

  nlohmann::ordered_json report;
  report["model"] = model_path;
  report["teacher"] = teacher_path ? *teacher_path : "";
  report["loss"] = teacher && o.distill ? "kl" : "cross-entropy";
  report["train_text"] = *text_arg;
  report["train_tokens"] = train.size();
  report["method"] = method;
  report["options"] = report_options(o);
  report["targets"] = targets.size();
  if (!trains_layers) report["adapter_parameters"] = r.adapters.parameter_count();
  if (!trains_layers) report["options"]["scale"] = r.adapters.scale();
  if (block_wise) {
    report["options"] = block_ap_options_json(bo);
    report["loss"] = "block output MSE";
    report["blocks"] = block_ap_blocks_json(block_figures);
  }
  auto& curve = report["curve"] = nlohmann::ordered_json::array();
  for (const RecoveryStep& s : r.history) curve.push_back(step_json(s));

  // Held-out evaluation as `mcw eval` does it: the compressed model as its directory
  // holds it, the adapters kept apart beside it (lora_lm.h) or QAT's layers, and the model
  // as written.
  EvalOptions eo;
  eo.window = eo.stride = default_eval_window(model.cfg.max_seq_len);
  std::unique_ptr<CausalLm> base = teacher ? causal_lm_view(*teacher) : nullptr;
  auto eval = [&](const char* key, const CausalLm& m) {
    if (held_out.empty()) return;
    ProgressBar bar(std::string("eval ") + key);
    report["eval"][key] = eval_json(
        evaluate(m, held_out, eo, base.get(), bar.callback(), &sigint.token()), base != nullptr);
  };
  if (!held_out.empty()) {
    report["eval"]["window"] = eo.window;
    if (base)
      report["eval"]["teacher"] =
          eval_json(evaluate(*base, held_out, eo, nullptr, {}, &sigint.token()), false);
  }
  eval("compressed", *causal_lm_view(model));
  if (qat)
    eval("qat", *causal_lm_view(r.merged));
  else if (!block_wise)
    eval("adapters", *lora_lm_view(model, r.adapters, "the trained adapters"));
  if (sigint.token().cancelled()) return 130;

  // The model to write, one block at a time: QAT's layers or each adapted layer re-coded
  // on its grid, or the adapters merged into dense weights.
  const fs::path dir = staging.path();
  size_t written_layers = 0;
  if (merge != "none") {
    const RecoveredModel out =
        write_recovered_model(dir.string(), model, packed, r,
                              merge == "dense" ? RecoveryMerge::Dense : RecoveryMerge::Recode,
                              &sigint.token());
    written_layers = out.packed_layers;
    write_tokenizer_files(file, dir.string());  // a GGUF's own tokenizer too
    if (merge == "recode") {
      auto& layers = report["recoded"] = nlohmann::ordered_json::array();
      for (const auto& [name, e] : out.added_error)
        layers.push_back({{"name", name}, {"added_error", e}});
      eval("recoded", *causal_lm_view(out.model));
    }
    if (block_wise) eval("block_ap", *causal_lm_view(out.model));  // as packed and written
  }
  if (sigint.token().cancelled()) return 130;

  if (!trains_layers)
    save_lora_peft((dir / "adapter").string(), r.adapters,
                   teacher_path ? *teacher_path : model_path);
  write_text_file((dir / "recovery.json").string(), report.dump(2) + "\n");
  fs::remove(checkpoint_path);
  fs::remove(checkpoint_path + ".packed");  // Block-AP's
  staging.commit();

  if (args.flag("json")) {
    std::printf("%s\n", report.dump(2).c_str());
    return 0;
  }
  if (block_wise) print_block_ap_blocks(block_figures);
  else std::printf("%6s %10s %12s %12s\n", "step", "loss", "eval loss", "eval KL");
  for (const RecoveryStep& s : r.history) {
    if (!s.eval_loss && s.step != 0 && s.step % 10) continue;
    std::printf("%6lld %10s %12s %12s\n", (long long)s.step,
                s.step ? std::to_string(s.loss).c_str() : "",
                s.eval_loss ? std::to_string(*s.eval_loss).c_str() : "",
                s.eval_kl ? std::to_string(*s.eval_kl).c_str() : "");
  }
  if (report.contains("eval")) {
    const auto& e = report["eval"];
    auto line = [&](const char* what, const nlohmann::ordered_json& j) {
      std::printf("%-12s perplexity %.4f", what, j["perplexity"].get<double>());
      if (j.contains("kl"))
        std::printf(", KL %.5f, top-1 %.2f%%", j["kl"].get<double>(),
                    100 * j["top1_agreement"].get<double>());
      std::printf("\n");
    };
    if (e.contains("teacher")) line("teacher", e["teacher"]);
    line("compressed", e["compressed"]);
    if (e.contains("adapters")) line("+ adapters", e["adapters"]);
    if (e.contains("qat")) line("after QAT", e["qat"]);
    if (e.contains("block_ap")) line("Block-AP", e["block_ap"]);
    if (e.contains("recoded")) line("re-coded", e["recoded"]);
  }
  if (report.contains("recoded")) {
    double worst = 0;
    for (const auto& l : report["recoded"]) worst = std::max(worst, l["added_error"].get<double>());
    std::printf(
        "re-coded     %zu layers in their schemes; the re-coding loses up to %.0f%% of an "
        "adapter's update\n",
        report["recoded"].size(), 100 * worst);
  }
  std::printf(
      "wrote        %s (%s) in %s\n", out_arg->c_str(),
      trains_layers ? (std::to_string(written_layers) + " layers in their layout, " +
             std::to_string(r.quantized.size()) + " of them trained")
                .c_str()
          : (human_count(uint64_t(r.adapters.parameter_count())) + " adapter parameters").c_str(),
      human_duration(block_wise           ? block_ap_seconds(block_figures)
                     : r.history.empty() ? 0
                                         : r.history.back().seconds)
          .c_str());
  return 0;
}

}  // namespace mcw::cli
