// Plain data of a model diff (the open model A against another file B, tensor by tensor)
// as the diff view shows it; app/ fills it from the engine's ModelDiff.
#pragma once
#include <QList>
#include <QString>
#include <QtGlobal>

namespace mcw::ui {

enum class TensorDiffStatus { Compared, ShapeMismatch, OnlyInA, OnlyInB };

struct TensorDiffRow {
  QString name;
  TensorDiffStatus status = TensorDiffStatus::Compared;
  QList<qint64> shape_a, shape_b;  // empty on the side that lacks the tensor
  QString dtype_a, dtype_b;        // empty on the side that lacks the tensor
  quint64 bytes_a = 0, bytes_b = 0;
  // Compared rows only (NaN elsewhere).
  double rel_l2 = qQNaN(), max_abs = qQNaN(), cosine = qQNaN();
  double changed_fraction = qQNaN(), sparsity_a = qQNaN(), sparsity_b = qQNaN();
  bool differs = false;  // values, dtype, shape or presence
};

struct ModelDiffSummary {
  int tensors = 0, differing = 0, value_changed = 0, dtype_changed = 0;
  int only_in_a = 0, only_in_b = 0, shape_mismatch = 0;
  quint64 bytes_a = 0, bytes_b = 0;
};

enum class ModelDiffState { None, Running, Done, Failed, Cancelled };

struct ModelDiffResult {
  ModelDiffState state = ModelDiffState::None;
  QString path_a, path_b;
  QString error;  // one line, when Failed
  int job_id = 0;
  QList<TensorDiffRow> rows;  // A's order, then tensors only B has
  ModelDiffSummary summary;
};

QString tensor_diff_status_name(TensorDiffStatus s);  // "compared", "shape differs", ...
// "N tensors differ (V in value, D in dtype), M only in A, K only in B, S with another shape"
QString model_diff_summary_text(const ModelDiffSummary& s);

}  // namespace mcw::ui
