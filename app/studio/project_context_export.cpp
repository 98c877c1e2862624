// ProjectContext's exports: the review report of the saved project (the engine's writers,
// or a PDF rendered here) and the compressed model of a run, each a job on the bridge.
#include <QFileInfo>

#include "app/studio/project_context.h"
#include "app/studio/report_pdf.h"
#include "engine/core/error.h"
#include "engine/export/gguf_file_type.h"
#include "engine/report/report_writer.h"
#include "engine/runs/run_export.h"

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
  RunExportOptions ro;
  ro.format = compressed_tensors ? RunExportFormat::CompressedTensors
              : gguf             ? RunExportFormat::Gguf
                                 : RunExportFormat::HuggingFace;
  ro.gguf_type = type;
  ro.gguf_calibration = gguf_calibration == QLatin1String("gptq")      ? GgufRequantise::Gptq
                        : gguf_calibration == QLatin1String("imatrix") ? GgufRequantise::Imatrix
                                                                       : GgufRequantise::None;
  const QString name = QStringLiteral("Export model of run %1").arg(run_id);
  return bridge_.start(name, [this, file, path, run_id, ro](JobContext& job) mutable {
    ro.log = [&job](const std::string& line) { job.log(q(line)); };
    ro.progress = [&job](const ProgressEvent& e) {
      job.progress(e.fraction, q(e.stage), q(e.item.empty() ? e.stage : e.item));
    };
    ro.cancel = &job.cancel();
    const RunExport e = export_run(file.toStdString(), run_id, path.toStdString(), ro);
    job.post([this] { run_history_.reload(); });
    job.log(q(describe_run_export(e, run_id, path.toStdString())));
  });
}

}  // namespace mcw::studio
