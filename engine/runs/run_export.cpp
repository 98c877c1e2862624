#include "engine/runs/run_export.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "engine/core/error.h"
#include "engine/core/memory_usage.h"
#include "engine/export/compress_to_directory.h"
#include "engine/export/compressed_tensors_export.h"
#include "engine/export/gguf_export.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/tokenizer_files.h"
#include "engine/model/llama_save.h"
#include "engine/model/tokenizer_loader.h"
#include "engine/recipe/recipe.h"
#include "engine/runs/project_runner.h"
#include "engine/runs/run_store.h"
#include "engine/export/recovered_writer.h"
#include "engine/train/recovery.h"

namespace mcw {

namespace fs = std::filesystem;

namespace {

template <class... A>
std::string format(const char* f, A... a) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, a...);
  return buf;
}

// What a Hugging Face directory written at `path` holds.
RunExport describe_hf_directory(const std::string& path) {
  RunExport out;
  out.kind = "model-hf";
  const fs::path index = fs::path(path) / "model.safetensors.index.json";
  out.weights_file = fs::exists(index) ? index.string() : (fs::path(path) / "model.safetensors").string();
  out.tokenizer_files = tokenizer_files_in(path);
  if (const fs::path p = fs::path(path) / kPackedFileName; fs::exists(p)) out.packed_file = p.string();
  return out;
}

// The GGUF file from `source` (the run's compressed directory, or the model for the
// baseline), its re-quantisation told line by line.
void write_gguf(const std::string& source, const std::string& path, const ProjectRunInputs& in,
                const CompressOptions& co, const RunExportOptions& o, double progress_from) {
  auto log = [&](const std::string& line) { if (o.log) o.log(line); };
  GgufExportOptions g;
  if (o.gguf_calibration != GgufRequantise::None)
    g.calibration = calibration_windows(in.calibration_tokens, co.calib_windows, co.calib_window);
  g.method = o.gguf_calibration == GgufRequantise::Gptq ? GgufCalibration::Gptq
                                                        : GgufCalibration::Importance;
  if (g.calibration.empty())
    log(o.gguf_calibration == GgufRequantise::None
            ? "GGUF blocks re-quantised without calibration, as asked"
            : "the project has no calibration text: GGUF blocks re-quantised without calibration");
  else if (g.method == GgufCalibration::Importance)
    log("GGUF blocks weighted by the importance matrix of the project's calibration text, as "
        "llama-quantize --imatrix");
  g.progress = progress_part(o.progress, progress_from, 0.95);
  g.cancel = o.cancel;
  const GgufExportReport r = export_gguf(source, path, *o.gguf_type, g);
  int kept = 0, requantised = 0;
  double worst = 0, gptq_sum = 0, imatrix_sum = 0;
  for (const GgufExportTensor& t : r.tensors) {
    const std::string type(dtype_name(t.type));
    kept += t.codes_kept;
    worst = std::max(worst, t.rel_error);
    if (t.gptq_output_error) {
      ++requantised, gptq_sum += *t.gptq_output_error, imatrix_sum += *t.imatrix_output_error;
      log(format("GPTQ on %s: %s, output error %.5f (imatrix encoding %.5f)", type.c_str(),
                 t.name.c_str(), *t.gptq_output_error, *t.imatrix_output_error));
    }
    if (!t.requantised_because.empty())
      log("re-quantised as " + type + ": " + t.name + " (" + t.requantised_because + ")");
  }
  log(format("GGUF %s: %zu tensors, %d with the run's codes kept, largest relative error against "
             "the run's weights %.3g",
             std::string(o.gguf_type->name).c_str(), r.tensors.size(), kept, worst));
  if (requantised)
    log(format("GPTQ re-quantised %d linears on the calibration text: mean output error %.5f, "
               "where the imatrix encoding gives %.5f",
               requantised, gptq_sum / requantised, imatrix_sum / requantised));
}

}  // namespace

bool is_gguf_path(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".gguf";
}

// The run's recovery redone on the directory it was compressed into, as project_runner ran
// it (the same options, text and teacher, so the same result), then the recovered model
// written block by block beside the directory's files and moved over them.
static void recover_directory(const std::string& dir, const ProjectRunInputs& in, const Recipe& recipe,
                              const CancelToken* cancel) {
  const RecoveryOptions o = recovery_options(recipe.recovery);
  const LlamaModel model = load_llama(open_model_file(dir));  // views of its files
  const std::string packed_path = (fs::path(dir) / kPackedFileName).string();
  // As a run's estimate does (before anything is read): this machine may have less.
  const uint64_t need = recovery_memory_bytes(model, o) + fs::file_size(packed_path);
  if (const uint64_t have = memory_available(); have && need > have)
    throw Error(dir, "redoing the run's recovery needs about " + std::to_string(need >> 20) + " MiB, more than the " +
                         std::to_string(have >> 20) + " MiB available");
  const std::vector<CompressedTensor> layers = read_packed_safetensors(packed_path);
  const RecoveryResult r = recover_compressed(model, &in.base, layers, in.calibration_tokens, {}, o, {}, cancel);
  const fs::path written = fs::path(dir) / ".recovered";
  fs::remove_all(written);
  fs::create_directories(written);
  write_recovered_model(written.string(), model, layers, r, RecoveryMerge::Recode, cancel);
  // The same shard names and files; renamed over the mapped originals (their mappings keep
  // the old contents until the model above is gone).
  for (const fs::directory_entry& e : fs::directory_iterator(written))
    fs::rename(e.path(), fs::path(dir) / e.path().filename());
  fs::remove_all(written);
}

RunExport export_run(const std::string& project_file, int64_t run_id, const std::string& path,
                     const RunExportOptions& o) {
  auto log = [&](const std::string& line) { if (o.log) o.log(line); };
  const bool gguf = o.format == RunExportFormat::Gguf;
  const bool compressed_tensors = o.format == RunExportFormat::CompressedTensors;
  if (gguf && !o.gguf_type) throw Error(path, "a GGUF export needs a file type");
  report(o.progress, "load", project_file, 0);
  const ProjectRunInputs in = load_project_run_inputs(project_file);
  const std::unique_ptr<RunStore> store = RunStore::open(in.database_path);
  const std::optional<RunRecord> run = store->get_run(run_id);
  const std::string where = in.database_path + ": run " + std::to_string(run_id);
  if (!run) throw Error(in.database_path, "no run " + std::to_string(run_id));
  if (run->info.status != RunStatus::Done)
    throw Error(where, std::string("the run is ") + run_status_name(run->info.status) +
                           "; only a finished run can be exported");
  if (run->info.model_fingerprint != in.fingerprint)
    throw Error(where, "the run was made on another model than the project's " + in.project.model_path);
  if (o.cancel) o.cancel->throw_if_cancelled();

  // As project_runner compressed it: the same recipe text, calibration text and options.
  std::optional<Recipe> recipe;
  if (run->info.recipe_name != kBaselineRecipe) {
    recipe = parse_recipe(run->info.recipe_text, where + " recipe '" + run->info.recipe_name + "'");
    if (recipe_needs_calibration(*recipe) && in.calibration_tokens.empty())
      throw Error(where, "the recipe needs calibration text and the project has none now");
  }
  if (compressed_tensors && !recipe)
    throw Error(where, "the baseline has no compressed layers to export as compressed-tensors");
  CompressOptions co;
  co.calib_window = std::min(co.calib_window, in.base.cfg.max_seq_len);
  // Where the compression's share of the progress ends: GPTQ on the GGUF grid is another
  // pass of calibration, as long as a calibrated recipe's.
  const double compressed_at = gguf && o.gguf_calibration == GgufRequantise::Gptq ? 0.45 : 0.85;
  RunExport out;
  // compressed-tensors and GGUF: compressed into an MCW directory beside `path` first
  // (resumable like any export), then rewritten, and the intermediate removed.
  const std::string hf_path = compressed_tensors || gguf ? path + ".mcw-compressed" : path;
  std::string gguf_source = in.project.model_path;  // the baseline's: the model itself
  if (recipe) {
    // Streamed block by block into the directory, as `mcw compress` does: a real-size
    // model never sits in memory whole, and an export that was stopped (cancelled, the
    // studio closed, killed) goes on from its last finished block when started again.
    CompressToDirectory dir(in.file, in.base, *recipe, in.calibration_tokens, co, hf_path,
                            CompressToDirectory::Resume::IfPossible, {memory_available(), {}});
    if (const auto& from = dir.resumed_from())
      log("resuming the export from " + dir.staging_path() + " (" + from->describe() + ")");
    CompressionResult compressed;
    try {
      compressed = dir.compress(progress_part(o.progress, 0.05, compressed_at), o.cancel);
    } catch (const Cancelled&) {
      if (const std::string k = dir.kept(); !k.empty())
        log("export stopped: " + k + "; exporting run " + std::to_string(run_id) +
            " to the same place again goes on from there");
      throw;
    }
    report(o.progress, "save", path, compressed_at);
    dir.finish(compressed);
    if (!recipe->recovery.empty()) {
      report(o.progress, "recover", path, compressed_at);
      recover_directory(hf_path, in, *recipe, o.cancel);
    }
    out = describe_hf_directory(hf_path);
    out.packed_layers = compressed.layers.size();
    gguf_source = hf_path;
    if (compressed_tensors) {
      report(o.progress, "compressed-tensors", path, 0.9);
      const CtExportReport r = export_compressed_tensors(hf_path, path);
      fs::remove_all(hf_path);
      for (const auto& [layer, why] : r.dense) log("written dense: " + layer + " (" + why + ")");
      out.kind = "model-compressed-tensors";
      out.weights_file = (fs::path(path) / "model.safetensors").string();
      out.packed_file.clear();
      out.packed_layers = r.packed.size();
      out.sparse24_layers = r.sparse24.size();
    }
  } else if (!gguf) {
    report(o.progress, "save", path, 0.85);
    save_llama_hf(in.base, path);
    write_tokenizer_files(in.file, path);
    out = describe_hf_directory(path);
  }
  if (gguf) {
    write_gguf(gguf_source, path, in, co, o, compressed_at);
    if (recipe) fs::remove_all(hf_path);
    out = RunExport{};
    out.kind = "model-gguf", out.weights_file = path;
  }
  out.recipe_name = run->info.recipe_name;
  report(o.progress, "record", out.weights_file, 0.95);
  store->add_artifact(run_id, out.kind, out.weights_file);
  if (!out.packed_file.empty()) store->add_artifact(run_id, "packed-safetensors", out.packed_file);
  report(o.progress, "record", out.weights_file, 1.0);
  return out;
}

std::string describe_run_export(const RunExport& e, int64_t run_id, const std::string& path) {
  std::string line = "exported run " + std::to_string(run_id) + " ('" + e.recipe_name + "') to " + path;
  if (e.kind == "model-hf")
    line += e.tokenizer_files.empty()
                ? " (the source model has no tokenizer files to copy)"
                : format(" with %zu tokenizer file(s)", e.tokenizer_files.size());
  if (e.kind == "model-compressed-tensors")
    line += format(" as compressed-tensors, %zu layers pack-quantized, %zu sparse-24-bitmask",
                   e.packed_layers, e.sparse24_layers);
  if (!e.packed_file.empty())
    line += format(" and its %zu compressed layers in %s", e.packed_layers, kPackedFileName);
  return line;
}

}  // namespace mcw
