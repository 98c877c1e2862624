#include "app/studio/model_diff_data.h"

namespace mcw::studio {

static ui::TensorDiffStatus to_status(TensorDiffKind k) {
  switch (k) {
    case TensorDiffKind::Compared:
      return ui::TensorDiffStatus::Compared;
    case TensorDiffKind::ShapeMismatch:
      return ui::TensorDiffStatus::ShapeMismatch;
    case TensorDiffKind::OnlyInA:
      return ui::TensorDiffStatus::OnlyInA;
    case TensorDiffKind::OnlyInB:
      return ui::TensorDiffStatus::OnlyInB;
  }
  return ui::TensorDiffStatus::Compared;
}

static QList<qint64> to_shape(const Shape& s) { return QList<qint64>(s.begin(), s.end()); }

ui::ModelDiffResult to_diff_result(const ModelDiff& diff) {
  ui::ModelDiffResult out;
  out.state = ui::ModelDiffState::Done;
  out.path_a = QString::fromStdString(diff.path_a);
  out.path_b = QString::fromStdString(diff.path_b);
  out.rows.reserve(qsizetype(diff.rows.size()));
  for (const TensorDiff& r : diff.rows) {
    ui::TensorDiffRow row;
    row.name = QString::fromStdString(r.name);
    row.status = to_status(r.kind);
    row.differs = r.differs();
    if (r.in_a()) {
      row.shape_a = to_shape(r.shape_a);
      row.dtype_a = QString::fromLatin1(dtype_name(r.dtype_a).data(),
                                        qsizetype(dtype_name(r.dtype_a).size()));
      row.bytes_a = r.bytes_a;
    }
    if (r.in_b()) {
      row.shape_b = to_shape(r.shape_b);
      row.dtype_b = QString::fromLatin1(dtype_name(r.dtype_b).data(),
                                        qsizetype(dtype_name(r.dtype_b).size()));
      row.bytes_b = r.bytes_b;
    }
    if (r.kind == TensorDiffKind::Compared) {
      row.rel_l2 = r.rel_l2;
      row.max_abs = r.max_abs;
      row.cosine = r.cosine;
      row.changed_fraction = r.changed_fraction;
      row.sparsity_a = r.sparsity_a;
      row.sparsity_b = r.sparsity_b;
    }
    out.rows.push_back(std::move(row));
  }
  const ModelDiff::Summary s = diff.summary();
  out.summary = {int(s.tensors),        int(s.differing), int(s.value_changed),
                 int(s.dtype_changed),  int(s.only_in_a), int(s.only_in_b),
                 int(s.shape_mismatch), s.bytes_a,        s.bytes_b};
  return out;
}

}  // namespace mcw::studio
