// The Runs panel's table model: one row per run (newest first), its metrics formatted
// for reading and, under Qt::UserRole, as numbers for sorting. A reload that only adds
// runs inserts rows, so a selection survives runs finishing in the background. A run of a
// recipe written by `mcw predict --add` also shows the KL and perplexity it was predicted
// to have (the last columns), its band and error against the measured value on hover.
#pragma once
#include <QAbstractTableModel>
#include <QSortFilterProxyModel>

#include "widgets/bridge_types.h"

namespace mcw::ui {

class RunTableModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column {
    Id,
    Recipe,
    Status,
    Started,
    Duration,
    Perplexity,
    KL,
    Top1,
    BitsPerWeight,
    Size,
    Latency,
    // Last, so that the measured columns keep their places (and saved widths).
    PredictedKL,
    PredictedPerplexity,
    // An OCR model's runs (an ONNX project): character error rate. After the others, which
    // keep their places and saved widths.
    CER,
    ColumnCount
  };
  static constexpr int RunIdRole = Qt::UserRole + 1;

  explicit RunTableModel(QObject* parent = nullptr);
  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  void setRuns(const QList<RunRow>& runs);
  const QList<RunRow>& runs() const { return runs_; }
  int rowOfRun(qint64 id) const;  // -1 when absent
  // The store metric a column shows, or empty for Id..Duration.
  static QString metricOf(int column);
  // For a predicted column, the measured metric it predicts ("kl"); else empty.
  static QString measuredOf(int column);

 private:
  QList<RunRow> runs_;
};

// Text filter (recipe, status, id or error) and status filter, both case-insensitive.
class RunFilterProxy : public QSortFilterProxyModel {
  Q_OBJECT
 public:
  explicit RunFilterProxy(QObject* parent = nullptr);
  void setText(const QString& text);
  void setStatus(const QString& status);  // empty: every status

 protected:
  bool filterAcceptsRow(int source_row, const QModelIndex& source_parent) const override;

 private:
  QString text_, status_;
};

}  // namespace mcw::ui
