// ProjectContext's exports: the review report of the saved project (the engine's writers,
// or a PDF rendered here) and the compressed model of a run, each a job on the bridge.
#include <QFileInfo>
#include <filesystem>

#include "app/studio/model_export.h"
#include "app/studio/project_context.h"

#include <filesystem>
#include "app/studio/report_pdf.h"
#include "engine/compress/compress_llama.h"
#include "engine/core/error.h"
#include "engine/core/memory_usage.h"
#include "engine/export/compress_to_directory.h"
#include "engine/export/compressed_tensors_export.h"
#include "engine/export/gguf_export.h"
#include "engine/export/gguf_file_type.h"
#include "engine/export/packed_safetensors.h"
#include "engine/report/report_writer.h"
#include "engine/runs/project_runner.h"

namespace mcw::studio {

static QString q(const std::string& s) { return QString::fromStdString(s); }

// The saved project file exports read, or empty (the reason logged).
static QString saved_project(ProjectContext& c, bool has_project, const QString& file, bool dirty,
                             const QString& what) {
  if (!has_project) {
    c.log(QStringLiteral("error: %1 needs an open project").arg(what));
    return {};
  }
  if (file.isEmpty()) {
    c.log(QStringLiteral("error: save the project before %1").arg(what));
    return {};
  }
  if (dirty)
    c.log(QStringLiteral("note: the project has unsaved changes; %1 uses the saved project")
              .arg(what));
  return file;
}

int ProjectContext::startExportReport(const QString& path) {
  const QString file = saved_project(*this, hasProject(), project_file_, dirty_,
                                     QStringLiteral("exporting a report"));
  if (file.isEmpty()) return 0;
  const bool pdf = QFileInfo(path).suffix().compare(QLatin1String("pdf"), Qt::CaseInsensitive) == 0;
  if (!pdf) {
    try {
      report_format_for(path.toStdString());
    } catch (const Error& e) {
      log(QStringLiteral("error: ") + q(e.what()));
      return 0;
    }
  }
  return bridge_.start(QStringLiteral("Export report"), [file, path, pdf](JobContext& job) {
    job.progress(0, QStringLiteral("gather"), file);
    const ReportData data = load_report_data(file.toStdString());
    job.cancel().throw_if_cancelled();
    job.progress(0.5, QStringLiteral("write"), path);
    QStringList written;
    if (pdf) {
      write_pdf_report(data, path);
      written << path;
    } else {
      for (const std::string& f : write_report(data, path.toStdString())) written << q(f);
    }
    job.log(QStringLiteral("report written: %1").arg(written.join(QStringLiteral(", "))));
  });
}

int ProjectContext::startExportModel(qint64 run_id, const QString& path, bool compressed_tensors,
                                     const QString& gguf_type, const QString& gguf_calibration) {
  const QString file = saved_project(*this, hasProject(), project_file_, dirty_,
                                     QStringLiteral("exporting a model"));
  if (file.isEmpty()) return 0;
  if (path.trimmed().isEmpty()) {
    log(QStringLiteral("error: no file to export the model to"));
    return 0;
  }
  const bool gguf = !compressed_tensors && is_gguf_path(path.toStdString());
  const GgufFileType* type = find_gguf_file_type(gguf_type.toStdString());
  if (gguf && !type) {
    log(QStringLiteral("error: GGUF type '%1' is not one of %2")
            .arg(gguf_type, q(gguf_file_type_list())));
    return 0;
  }
  const QStringList methods{QStringLiteral("gptq"), QStringLiteral("imatrix"), QStringLiteral("none")};
  if (!methods.contains(gguf_calibration)) {
    log(QStringLiteral("error: GGUF calibration '%1' is not one of %2")
            .arg(gguf_calibration, methods.join(QStringLiteral(", "))));
    return 0;
  }
  const QString name = QStringLiteral("Export model of run %1").arg(run_id);
  return bridge_.start(name, [this, file, path, run_id, compressed_tensors, gguf, type,
                              gguf_calibration](JobContext& job) {
    job.progress(0, QStringLiteral("load"), file);
    const ProjectRunInputs in = load_project_run_inputs(file.toStdString());
    const std::unique_ptr<RunStore> store = RunStore::open(in.database_path);
    const std::optional<RunRecord> run = store->get_run(run_id);
    const std::string where = in.database_path + ": run " + std::to_string(run_id);
    if (!run) throw Error(in.database_path, "no run " + std::to_string(run_id));
    if (run->info.status != RunStatus::Done)
      throw Error(where, std::string("the run is ") + run_status_name(run->info.status) +
                             "; only a finished run can be exported");
    if (run->info.model_fingerprint != in.fingerprint)
      throw Error(where,
                  "the run was made on another model than the project's " + in.project.model_path);
    job.cancel().throw_if_cancelled();

    // As project_runner compressed it: the same recipe text, calibration text and options.
    const ProgressFn progress = [&job](const ProgressEvent& e) {
      job.progress(0.05 + 0.8 * e.fraction, QStringLiteral("compress"),
                   q(e.item.empty() ? e.stage : e.item));
    };
    const bool baseline = run->info.recipe_name == kBaselineRecipe;
    std::optional<Recipe> recipe;
    if (!baseline) {
      recipe = parse_recipe(run->info.recipe_text, where + " recipe '" + run->info.recipe_name + "'");
      if (recipe_needs_calibration(*recipe) && in.calibration_tokens.empty())
        throw Error(where, "the recipe needs calibration text and the project has none now");
    }
    CompressOptions co;
    co.calib_window = std::min(co.calib_window, in.base.cfg.max_seq_len);
    SavedModel saved;
    size_t packed_layers = 0, sparse24_layers = 0;
    if (compressed_tensors && !recipe)
      throw Error(where, "the baseline has no compressed layers to export as compressed-tensors");
    // compressed-tensors and GGUF: compressed into an MCW directory beside `path` first
    // (resumable like any export), then rewritten, and the intermediate removed.
    const bool rewritten = compressed_tensors || gguf;
    const std::string hf_path =
        rewritten ? path.toStdString() + ".mcw-compressed" : path.toStdString();
    std::string gguf_source = in.project.model_path;  // the baseline's: the model itself
    if (recipe) {
      // Streamed block by block into the directory, as `mcw compress` does: a real-size
      // model never sits in memory whole, and an export that was stopped (cancelled, the
      // studio closed, killed) goes on from its last finished block when started again.
      CompressToDirectory out(in.file, in.base, *recipe, in.calibration_tokens, co, hf_path,
                              CompressToDirectory::Resume::IfPossible, {memory_available(), {}});
      if (const auto& from = out.resumed_from())
        job.log(QStringLiteral("resuming the export from %1 (%2)").arg(q(out.staging_path()), q(from->describe())));
      CompressionResult compressed;
      try {
        compressed = out.compress(progress, &job.cancel());
      } catch (const Cancelled&) {
        if (const std::string k = out.kept(); !k.empty())
          job.log(QStringLiteral("export stopped: %1; exporting run %2 to the same place again goes on from there")
                      .arg(q(k))
                      .arg(run_id));
        throw;
      }
      job.progress(0.85, QStringLiteral("save"), path);
      out.finish(compressed);
      saved = describe_hf_export(in.file, hf_path);
      packed_layers = compressed.layers.size();
      gguf_source = hf_path;
      if (compressed_tensors) {
        job.progress(0.9, QStringLiteral("compressed-tensors"), path);
        const CtExportReport r = export_compressed_tensors(hf_path, path.toStdString());
        std::filesystem::remove_all(hf_path);
        for (const auto& [layer, why] : r.dense)
          job.log(QStringLiteral("written dense: %1 (%2)").arg(q(layer), q(why)));
        saved.kind = "model-compressed-tensors";
        saved.weights_file = (std::filesystem::path(path.toStdString()) / "model.safetensors").string();
        saved.packed_file.clear();
        packed_layers = r.packed.size();
        sparse24_layers = r.sparse24.size();
      }
    } else if (!gguf) {
      job.progress(0.85, QStringLiteral("save"), path);
      saved = save_exported_model(in.base, in.file, path.toStdString());
    }
    if (gguf) {
      // Linears the block format cannot take as they are get re-quantised with the
      // project's calibration text as `mcw export --calib TEXT --method gptq|imatrix`
      // would, or by the plain encoders.
      GgufExportOptions o;
      if (gguf_calibration != QLatin1String("none"))
        o.calibration = calibration_windows(in.calibration_tokens, co.calib_windows, co.calib_window);
      o.method = gguf_calibration == QLatin1String("gptq") ? GgufCalibration::Gptq
                                                           : GgufCalibration::Importance;
      if (o.calibration.empty())
        job.log(gguf_calibration == QLatin1String("none")
                    ? QStringLiteral("GGUF blocks re-quantised without calibration, as asked")
                    : QStringLiteral("the project has no calibration text: GGUF blocks "
                                     "re-quantised without calibration"));
      else if (o.method == GgufCalibration::Importance)
        job.log(QStringLiteral("GGUF blocks weighted by the importance matrix of the project's "
                               "calibration text, as llama-quantize --imatrix"));
      o.progress = [&job](const ProgressEvent& e) {
        job.progress(0.85 + 0.1 * e.fraction, QStringLiteral("GGUF"), q(e.item));
      };
      o.cancel = &job.cancel();
      const GgufExportReport r = export_gguf(gguf_source, path.toStdString(), *type, o);
      if (recipe) std::filesystem::remove_all(hf_path);
      int kept = 0, requantised = 0;
      double worst = 0, gptq_sum = 0, imatrix_sum = 0;
      for (const GgufExportTensor& t : r.tensors) {
        kept += t.codes_kept;
        worst = std::max(worst, t.rel_error);
        if (t.gptq_output_error) {
          ++requantised, gptq_sum += *t.gptq_output_error, imatrix_sum += *t.imatrix_output_error;
          job.log(QStringLiteral("GPTQ on %1: %2, output error %3 (imatrix encoding %4)")
                      .arg(q(std::string(dtype_name(t.type))), q(t.name))
                      .arg(*t.gptq_output_error, 0, 'f', 5)
                      .arg(*t.imatrix_output_error, 0, 'f', 5));
        }
        if (!t.requantised_because.empty())
          job.log(QStringLiteral("re-quantised as %1: %2 (%3)")
                      .arg(q(std::string(dtype_name(t.type))), q(t.name), q(t.requantised_because)));
      }
      job.log(QStringLiteral("GGUF %1: %2 tensors, %3 with the run's codes kept, largest relative "
                             "error against the run's weights %4")
                  .arg(q(std::string(type->name)))
                  .arg(r.tensors.size())
                  .arg(kept)
                  .arg(worst, 0, 'g', 3));
      if (requantised)
        job.log(QStringLiteral("GPTQ re-quantised %1 linears on the calibration text: mean output "
                               "error %2, where the imatrix encoding gives %3")
                    .arg(requantised)
                    .arg(gptq_sum / requantised, 0, 'f', 5)
                    .arg(imatrix_sum / requantised, 0, 'f', 5));
      saved = {"model-gguf", path.toStdString(), {}, {}};
    }
    job.progress(0.95, QStringLiteral("record"), q(saved.weights_file));
    store->add_artifact(run_id, saved.kind, saved.weights_file);
    if (!saved.packed_file.empty())
      store->add_artifact(run_id, "packed-safetensors", saved.packed_file);
    job.post([this] { run_history_.reload(); });
    QString line = QStringLiteral("exported run %1 ('%2') to %3")
                       .arg(run_id)
                       .arg(q(run->info.recipe_name), path);
    if (saved.kind == "model-hf")
      line += saved.tokenizer_files.empty()
                  ? QStringLiteral(" (the source model has no tokenizer files to copy)")
                  : QStringLiteral(" with %1 tokenizer file(s)").arg(saved.tokenizer_files.size());
    if (saved.kind == "model-compressed-tensors")
      line += QStringLiteral(" as compressed-tensors, %1 layers pack-quantized, %2 sparse-24-bitmask")
                  .arg(packed_layers)
                  .arg(sparse24_layers);
    if (!saved.packed_file.empty())
      line += QStringLiteral(" and its %1 compressed layers in %2")
                  .arg(packed_layers)
                  .arg(QString::fromLatin1(kPackedFileName));
    job.log(line);
  });
}

}  // namespace mcw::studio
