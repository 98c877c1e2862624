#include "engine/runs/project_runner.h"

#include <tbb/task_arena.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "engine/compress/compress_llama.h"
#include "engine/core/error.h"
#include "engine/core/memory_usage.h"
#include "engine/core/sha256.h"
#include "engine/core/text_file.h"
#include "engine/eval/packed_llama.h"
#include "engine/export/compress_to_directory.h"
#include "engine/export/recovered_writer.h"
#include "engine/io/staging_dir.h"
#include "engine/model/causal_lm.h"
#include "engine/model/tokenizer_loader.h"
#include "engine/recipe/recipe.h"
#include "engine/runs/fingerprint.h"
#include "engine/runs/onnx_project_runner.h"
#include "engine/runs/record_run.h"
#include "engine/train/llama_backprop.h"
#include "engine/train/recovery.h"

namespace mcw {

namespace {

// Latency belongs to the packed layouts a model deploys with, not to the run that made
// them: w4g128 by RTN or by GPTQ runs the same kernels on the same number of bytes. So a
// measurement is keyed by every linear's layout and the measurement's settings (52 bits of
// their SHA-256, exact in a double metric), and a run whose key matches an earlier finished
// run of this project and model, measured on a quiet machine, shares that measurement
// instead of taking another (which would differ by the machine's noise alone).
double latency_layout_key(const PackedLlama& model, const LatencyOptions& opt) {
  Sha256 h;
  for (const std::string& path : model.paths()) h.update(path + "\n");
  h.update(std::to_string(opt.prefill) + " " + std::to_string(opt.decode) + " " +
           std::to_string(opt.repeats) + " " +
           std::to_string(tbb::this_task_arena::max_concurrency()));
  const Sha256::Digest d = h.finish();
  uint64_t key = 0;
  for (int i = 0; i < 8; ++i) key = key << 8 | d[size_t(i)];
  return double(key >> 12);
}

// latency_others_cpu: the share of the machine other processes took while it ran;
// latency_busy: 1 when that share makes the figure one of a busy machine (plots flag it).
constexpr const char* kLatencyMetrics[] = {"latency_ms_per_token",     "latency_ms_per_token_min",
                                           "latency_ms_per_token_max", "prefill_tokens_per_s",
                                           "latency_others_cpu",       "latency_busy"};

void add_latency(std::vector<Metric>& m, RunStore& store, const ProjectRunInputs& in,
                 const PackedLlama& model, const RunHooks& hooks, const CancelToken* cancel) {
  const double key = latency_layout_key(model, in.latency);
  m.push_back({"latency_layout", key});
  for (const RunRecord& r : store.load_runs_with_metrics({in.project.name, RunStatus::Done})) {
    if (r.info.model_fingerprint != in.fingerprint || r.metric("latency_layout") != key ||
        r.metric("latency_busy").value_or(1.0) != 0.0)
      continue;
    for (const char* name : kLatencyMetrics)
      if (const auto v = r.metric(name)) m.push_back({name, *v});
    m.push_back({"latency_shared_from_run", double(r.info.id)});
    return;
  }
  const LatencyResult l = measure_latency(model, in.latency, hooks.progress, cancel);
  const double values[] = {l.ms_per_token,         l.ms_per_token_min, l.ms_per_token_max,
                           l.prefill_tokens_per_s, l.others_cpu,       l.busy() ? 1.0 : 0.0};
  for (size_t i = 0; i < std::size(kLatencyMetrics); ++i)
    m.push_back({kLatencyMetrics[i], values[i]});
}

void add_eval_and_latency(std::vector<Metric>& m, RunStore& store, const ProjectRunInputs& in,
                          const LlamaModel& model, const LlamaModel* baseline,
                          std::span<const CompressedLayer> compressed, const RunHooks& hooks,
                          const CancelToken* cancel) {
  enter(hooks, "eval");
  const EvalResult e =
      evaluate(model, in.evaluation_tokens, in.eval, baseline, hooks.progress, cancel);
  m.push_back({"perplexity", e.perplexity});
  m.push_back({"nll", e.nll});
  m.push_back({"kl", baseline ? e.kl : 0.0});
  m.push_back({"top1", baseline ? e.top1 : 1.0});
  m.push_back({"eval_scored_tokens", double(e.scored)});
  m.push_back({"eval_window", double(in.eval.window)});
  m.push_back({"eval_stride", double(in.eval.stride)});
  enter(hooks, "latency");
  // On the packed kernels: compressed linears as stored, the rest as f16.
  add_latency(m, store, in, PackedLlama(model, compressed), hooks, cancel);
}

// The recipe's recovery section: adapters trained on the project's calibration text
// (distilled from the base model), merged and re-coded into each compressed layer's own
// grid, or the quantised layers trained through their grids (QAT), so that `c` becomes the
// recovered model in the compressed layout, evaluated and timed as any run. Records the
// curve, the figures before recovery and the re-coding's loss. Checkpointed every
// in.recovery_checkpoint_every steps in the run's directory (`identity`: the run's), from
// where a stopped run goes on.
void recover_run(std::vector<Metric>& m, std::vector<CurvePoint>& curve, const ProjectRunInputs& in,
                 const std::string& source, const Recipe& recipe, CompressionResult& c,
                 const std::string& scratch_dir, const std::string& identity, const RunHooks& hooks,
                 const CancelToken* cancel) {
  if (in.calibration_tokens.empty())
    throw Error(source,
                "recovery trains on the project's calibration text, and the project has none");
  RecoveryOptions o = recovery_options(recipe.recovery);  // its memory is in the run's estimate
  // A checkpoint in the run's directory, from which a stopped run goes on: Block-AP's after
  // every block, LoRA's and QAT's every in.recovery_checkpoint_every steps.
  std::optional<RecoveryCheckpoint> stopped;
  std::optional<BlockApResult> blocks_done;
  if (o.method == RecoveryOptions::Method::BlockAp) {
    const std::string checkpoint = scratch_dir + "/block_ap.checkpoint.safetensors";
    if (std::filesystem::exists(checkpoint)) {
      blocks_done = load_block_ap_checkpoint(checkpoint, identity);
      o.block_resume = &*blocks_done;
      if (hooks.log)
        hooks.log("resuming Block-AP from " + checkpoint + " (" +
                  std::to_string(blocks_done->blocks.size()) + " blocks done)");
    }
    o.block_checkpoint = [checkpoint, &identity](const BlockApResult& so_far) {
      save_block_ap_checkpoint(checkpoint, so_far, identity);
    };
  } else {
    const std::string checkpoint = scratch_dir + "/recovery.checkpoint.safetensors";
    if (std::filesystem::exists(checkpoint)) {
      stopped = load_recovery_checkpoint(checkpoint, identity);
      o.resume = &*stopped;
      if (hooks.log)
        hooks.log("resuming the recovery from " + checkpoint + " (" +
                  std::to_string(stopped->step) + " of " + std::to_string(o.steps) +
                  " steps done)");
    }
    o.checkpoint_every = in.recovery_checkpoint_every;
    o.checkpoint = [checkpoint, &identity](const RecoveryCheckpoint& k) {
      save_recovery_checkpoint(checkpoint, k, identity);
    };
  }
  enter(hooks, "evaluate before recovery");
  const EvalResult before =
      evaluate(c.model, in.evaluation_tokens, in.eval, &in.base, hooks.progress, cancel);
  m.push_back({"perplexity_before_recovery", before.perplexity});
  m.push_back({"kl_before_recovery", before.kl});
  enter(hooks, "recover");
  std::vector<CompressedTensor> layers;
  for (CompressedLayer& l : c.layers) layers.push_back(std::move(l.tensor));  // put back below
  const RecoveryResult r = recover_compressed(c.model, &in.base, layers, in.calibration_tokens,
                                              in.evaluation_tokens, o, hooks.progress, cancel);
  for (const RecoveryStep& s : r.history) {
    if (s.step > 0) curve.push_back({"loss", s.step, s.loss});
    if (s.eval_loss) curve.push_back({"eval_loss", s.step, *s.eval_loss});
    if (s.eval_kl) curve.push_back({"eval_kl", s.step, *s.eval_kl});
  }
  // QAT trains the layers in their layout; adapters are merged and re-coded on its grid.
  // Block by block into the run's scratch directory, as the compression was.
  const std::string dir = scratch_dir + "/recovered";
  std::filesystem::remove_all(dir);  // a stopped run's
  std::filesystem::create_directories(dir);
  RecoveredModel f = write_recovered_model(dir, c.model, layers, r, RecoveryMerge::Recode, cancel,
                                           /*scratch=*/true);
  c.model = std::move(f.model);
  std::map<std::string, CompressedTensor*> recovered;
  for (CompressedTensor& t : f.layers) recovered[t.name] = &t;
  for (size_t i = 0; i < c.layers.size(); ++i)
    c.layers[i].tensor = std::move(*recovered.at(layers[i].name));
  double worst = 0;
  for (const auto& [name, e] : f.added_error) worst = std::max(worst, e);
  m.push_back({"recovery_steps", r.history.empty() ? 0.0 : double(r.history.back().step)});
  m.push_back({"recovery_seconds", r.history.empty() ? 0.0 : r.history.back().seconds});
  m.push_back({"recovery_recode_loss_max", worst});
}

}  // namespace

ProjectRunInputs load_project_run_inputs(const std::string& project_file,
                                         const ImageLoader& images) {
  ProjectRunInputs in;
  in.project_file = project_file;
  in.project = load_project(project_file);
  const Project& p = in.project;
  in.database_path =
      p.database_path.empty() ? default_database_path(project_file, p.name) : p.database_path;
  if (p.model_path.empty()) throw Error(project_file, "the project has no model");
  if (p.evaluation_path.empty())
    throw Error(project_file, "the project has no evaluation data, so runs cannot be scored");
  if (p.model_path.ends_with(".onnx")) {
    load_onnx_project_inputs(in, images);
    return in;
  }
  in.file = open_model_file(p.model_path);
  in.base = load_llama(in.file);
  in.fingerprint = model_fingerprint(in.file);
  in.tokenizer = load_tokenizer(in.file);
  if (!p.calibration_path.empty())
    in.calibration_tokens = in.tokenizer->encode(read_text_file(p.calibration_path), false);
  in.evaluation_tokens = in.tokenizer->encode(read_text_file(p.evaluation_path), false);
  if (p.eval.max_tokens > 0 && in.evaluation_tokens.size() > size_t(p.eval.max_tokens))
    in.evaluation_tokens.resize(size_t(p.eval.max_tokens));
  if (in.evaluation_tokens.size() < 2)
    throw Error(p.evaluation_path, "the evaluation text has fewer than 2 tokens");
  in.eval.window = std::min(p.eval.window, in.base.cfg.max_seq_len);
  in.eval.stride = std::min(p.eval.stride, in.eval.window);
  return in;
}

std::vector<StoppedRunWork> stopped_run_work(const std::string& database_path) {
  namespace fs = std::filesystem;
  std::vector<StoppedRunWork> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::absolute(database_path).parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || !name.starts_with(".mcw-run-") || !name.ends_with(".partial")) continue;
    StoppedRunWork w{e.path().string(), "no checkpoint yet", 0};
    try {
      if (const auto c = StreamedLlamaWriter::read_checkpoint(w.dir)) w.progress = c->describe();
    } catch (const Error& err) {
      w.progress = err.message();
    }
    for (const auto& f : fs::recursive_directory_iterator(e.path(), ec))
      if (f.is_regular_file(ec)) w.bytes += f.file_size(ec);
    out.push_back(std::move(w));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.dir < b.dir; });
  return out;
}

RecipeRunOutcome run_project_recipe(RunStore& store, const ProjectRunInputs& in,
                                    const ProjectRecipe& pr, const RunHooks& hooks,
                                    const CancelToken* cancel) {
  std::string text, source = pr.path;
  if (pr.is_inline()) {
    text = pr.inline_text;
    source = in.project_file + " (recipe '" + pr.name + "')";
  } else {
    try {
      text = read_text_file(pr.path);
    } catch (const Error& e) {  // still recorded, so the failure shows in the run list
      return record_run(store, in, pr.name, "", [&](auto&, auto&, auto&) { throw e; });
    }
  }
  if (in.onnx) return run_onnx_project_recipe(store, in, pr, text, source, hooks, cancel);
  return record_run(
      store, in, pr.name, text,
      [&](std::vector<Metric>& m, std::vector<LayerMetric>& layers,
          std::vector<CurvePoint>& curve) {
        const Recipe recipe = parse_recipe(text, source);
        // A prediction made for exactly these stages is recorded beside what is measured.
        if (recipe.prediction.value("stages", "") == recipe_stages_digest(recipe))
          for (const char* k : kPredictionKeys)
            if (recipe.prediction.contains(k))
              m.push_back({std::string("predicted_") + k, recipe.prediction[k].get<double>()});
        check_targets(recipe, in.base.tensor_names());
        if (!recipe.recovery.empty()) require_trainable(in.base.cfg);  // before the long work
        if (recipe_needs_calibration(recipe) && in.calibration_tokens.empty())
          throw Error(source, "this recipe needs calibration text and the project has none");
        CompressOptions co;
        co.calib_window = std::min(co.calib_window, in.base.cfg.max_seq_len);
        // The calibration this run uses, spelled out in the recipe (whose section, when it
        // has one, overrides these), so that the run's identity names it.
        Recipe run = recipe;
        if (!run.calibration.contains("windows")) run.calibration["windows"] = co.calib_windows;
        if (!run.calibration.contains("window")) run.calibration["window"] = co.calib_window;
        check_compress_memory(in.file.path, run,
                              streamed_compress_estimate(in.base, run, co, in.eval.window),
                              {memory_available(), {}});
        // Streamed into a directory as mcw compress does (blocks written in the model's
        // dtype and mapped), so that a real-size model is never whole in memory; the
        // compressed layers keep their packed form for the latency measurement. Beside the
        // run store: as much disk as the model, which a RAM-backed /tmp may not have.
        const DType dtype = StreamedLlamaWriter::output_dtype(in.base);
        const nlohmann::json identity =
            compress_run_identity(in.file, run, in.calibration_tokens, dtype);
        Sha256 key;
        key.update(identity.dump());
        StagingDir work(std::filesystem::absolute(in.database_path).parent_path() /
                            (".mcw-run-" + to_hex(key.finish()).substr(0, 16)),
                        StagingDir::Mode::Resumable);
        const std::string dir = work.path().string();
        const std::optional<CompressCheckpoint> stopped = StreamedLlamaWriter::read_checkpoint(dir);
        if (stopped)
          work.keep_on_failure();  // never lose a stopped run's work
        else
          work.clear();
        StreamedLlamaWriter writer = StreamedLlamaWriter::scratch(dir, dtype, identity);
        if (stopped) {
          co.resume = writer.resume();
          if (hooks.log)
            hooks.log("resuming the compression from " + dir + " (" + stopped->describe() + ")");
        }
        co.block_done = [&](const BlockDone& d, CompressionResult& r) {
          writer.block_done(d, r);
          if (writer.checkpointed()) work.keep_on_failure();
        };
        co.scratch_dir = dir;
        try {
          enter(hooks, "compress");
          CompressionResult c =
              compress_llama(in.base, run, in.calibration_tokens, co, hooks.progress, cancel);
          if (!recipe.recovery.empty())
            recover_run(m, curve, in, source, recipe, c, dir, identity.dump(), hooks, cancel);
          add_eval_and_latency(m, store, in, c.model, &in.base, c.layers, hooks, cancel);
          m.push_back({"bits_per_weight", c.bits_per_weight()});
          m.push_back({"size_bytes", double(c.storage_bits / 8)});
          m.push_back({"parameters", double(c.parameters)});
          m.push_back({"compress_seconds", c.seconds});
          for (const CompressedLayer& l : c.layers) {
            layers.push_back({l.tensor.name, "relative_error", l.relative_error});
            layers.push_back({l.tensor.name, "bits_per_weight", l.tensor.bits_per_weight()});
          }
        } catch (...) {
          if (writer.checkpointed() && hooks.log)
            hooks.log("the compression done so far is kept in " + dir +
                      ": running the recipe again goes on from it");
          throw;
        }
        work.keep_on_failure(false);  // done: the checkpoint goes with the directory
      });
}

RecipeRunOutcome run_project_baseline(RunStore& store, const ProjectRunInputs& in,
                                      const RunHooks& hooks, const CancelToken* cancel) {
  if (in.onnx) return run_onnx_project_baseline(store, in, hooks, cancel);
  return record_run(store, in, kBaselineRecipe, "", [&](std::vector<Metric>& m, auto&, auto&) {
    add_eval_and_latency(m, store, in, in.base, nullptr, {}, hooks, cancel);
    const uint64_t params = in.base.parameter_count();
    m.push_back({"bits_per_weight", 16.0});
    m.push_back({"size_bytes", double(params * 2)});
    m.push_back({"parameters", double(params)});
    m.push_back({"compress_seconds", 0.0});
  });
}

bool has_project_baseline(RunStore& store, const ProjectRunInputs& in) {
  for (const RunInfo& r : store.list_runs({in.project.name, RunStatus::Done}))
    if (r.recipe_name == kBaselineRecipe && r.model_fingerprint == in.fingerprint) return true;
  return false;
}

}  // namespace mcw
