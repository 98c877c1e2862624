#include "widgets/model_diff_types.h"

#include <QCoreApplication>

namespace mcw::ui {

QString tensor_diff_status_name(TensorDiffStatus s) {
  switch (s) {
    case TensorDiffStatus::Compared:
      return QCoreApplication::translate("ModelDiff", "compared");
    case TensorDiffStatus::ShapeMismatch:
      return QCoreApplication::translate("ModelDiff", "shape differs");
    case TensorDiffStatus::OnlyInA:
      return QCoreApplication::translate("ModelDiff", "only in A");
    case TensorDiffStatus::OnlyInB:
      return QCoreApplication::translate("ModelDiff", "only in B");
  }
  return {};
}

QString model_diff_summary_text(const ModelDiffSummary& s) {
  return QCoreApplication::translate(
             "ModelDiff",
             "%1 of %2 tensors differ (%3 in value, %4 in dtype), %5 only in A, %6 only in B, "
             "%7 with another shape")
      .arg(s.differing)
      .arg(s.tensors)
      .arg(s.value_changed)
      .arg(s.dtype_changed)
      .arg(s.only_in_a)
      .arg(s.only_in_b)
      .arg(s.shape_mismatch);
}

}  // namespace mcw::ui
