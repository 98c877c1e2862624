#include "widgets/run_table_model.h"

#include <QColor>
#include <QFont>
#include <cmath>
#include <iterator>
#include <limits>

namespace mcw::ui {

RunTableModel::RunTableModel(QObject* parent) : QAbstractTableModel(parent) {}

int RunTableModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(runs_.size());
}

int RunTableModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : ColumnCount;
}

QString RunTableModel::metricOf(int column) {
  switch (column) {
    case Perplexity:
      return QStringLiteral("perplexity");
    case KL:
      return QStringLiteral("kl");
    case Top1:
      return QStringLiteral("top1");
    case BitsPerWeight:
      return QStringLiteral("bits_per_weight");
    case Size:
      return QStringLiteral("size_bytes");
    case Latency:
      return QStringLiteral("latency_ms_per_token");
    case PredictedKL:
      return QStringLiteral("predicted_kl");
    case PredictedPerplexity:
      return QStringLiteral("predicted_perplexity");
    case CER:
      return QStringLiteral("cer");
    default:
      return {};
  }
}

QString RunTableModel::measuredOf(int column) {
  switch (column) {
    case PredictedKL:
      return metricOf(KL);
    case PredictedPerplexity:
      return metricOf(Perplexity);
    default:
      return {};
  }
}

static QString format_metric(int column, double v) {
  using C = RunTableModel;
  switch (column) {
    case C::Perplexity:
    case C::PredictedPerplexity:
      return QString::number(v, 'f', v < 100 ? 3 : 1);
    case C::KL:
    case C::PredictedKL:
      return QString::number(v, 'g', 3);
    case C::Top1:
      return QStringLiteral("%1 %").arg(v * 100, 0, 'f', 1);
    case C::CER:
      return QStringLiteral("%1 %").arg(v * 100, 0, 'f', 2);
    case C::BitsPerWeight:
      return QString::number(v, 'f', 2);
    case C::Size:
      return format_bytes(quint64(std::max(0.0, v)));
    case C::Latency:
      return QStringLiteral("%1 ms").arg(v, 0, 'f', v < 10 ? 3 : 1);
    default:
      return QString::number(v);
  }
}

// Whether the measured value fell outside the predicted band (when both are known).
static bool outside_band(const RunRow& r, const QString& predicted, const QString& measured) {
  const QString lo = predicted + QStringLiteral("_low"), hi = predicted + QStringLiteral("_high");
  if (!r.metrics.contains(measured) || !r.metrics.contains(lo) || !r.metrics.contains(hi))
    return false;
  const double m = r.metric(measured);
  return m < r.metric(lo) || m > r.metric(hi);
}

// "predicted 0.0312 [0.025, 0.041], measured 0.0335, error +7%": how far off the predictor
// was is the point of showing a prediction beside a finished run.
static QString predicted_tooltip(const RunRow& r, int column) {
  const QString predicted = RunTableModel::metricOf(column);
  const QString measured = RunTableModel::measuredOf(column);
  const double p = r.metric(predicted);
  QString t = RunTableModel::tr("predicted %1").arg(format_metric(column, p));
  const QString lo = predicted + QStringLiteral("_low"), hi = predicted + QStringLiteral("_high");
  if (r.metrics.contains(lo) && r.metrics.contains(hi))
    t += QStringLiteral(" [%1, %2]")
             .arg(format_metric(column, r.metric(lo)), format_metric(column, r.metric(hi)));
  if (!r.metrics.contains(measured)) return t + RunTableModel::tr(", not measured");
  const double m = r.metric(measured);
  t += RunTableModel::tr(", measured %1").arg(format_metric(column, m));
  if (p != 0) {
    const double error = (m - p) / std::abs(p) * 100;
    t += RunTableModel::tr(", error %1%2%")
             .arg(error >= 0 ? QStringLiteral("+") : QString())
             .arg(error, 0, 'f', std::abs(error) < 10 ? 1 : 0);
  }
  if (outside_band(r, predicted, measured)) t += RunTableModel::tr(" (outside the band)");
  return t;
}

static QColor status_colour(const QString& status) {
  if (status == QLatin1String("failed")) return {224, 80, 74};
  if (status == QLatin1String("running") || status == QLatin1String("queued"))
    return {64, 128, 214};
  if (status == QLatin1String("interrupted")) return {214, 140, 40};
  if (status == QLatin1String("cancelled")) return {128, 128, 128};
  return {};
}

QVariant RunTableModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= runs_.size()) return {};
  const RunRow& r = runs_[index.row()];
  const int c = index.column();
  if (role == RunIdRole) return r.id;
  const QString metric = metricOf(c);
  if (!metric.isEmpty()) {
    const bool has = r.metrics.contains(metric);
    const double v = r.metrics.value(metric);
    if (role == Qt::DisplayRole) return has ? format_metric(c, v) : QString();
    // Runs without the metric sort after every run with it.
    if (role == Qt::UserRole) return has ? v : std::numeric_limits<double>::max();
    if (role == Qt::TextAlignmentRole) return int(Qt::AlignRight | Qt::AlignVCenter);
    const QString measured = measuredOf(c);
    if (role == Qt::ToolTipRole && has)
      return measured.isEmpty() ? QStringLiteral("%1 = %2").arg(metric).arg(v, 0, 'g', 10)
                                : predicted_tooltip(r, c);
    // A prediction the measurement fell outside of stands out.
    if (role == Qt::ForegroundRole && has && !measured.isEmpty() &&
        outside_band(r, metric, measured))
      return QColor(214, 140, 40);
    return {};
  }
  switch (role) {
    case Qt::DisplayRole:
      switch (c) {
        case Id:
          return r.id;
        case Recipe:
          return r.pareto ? r.recipe + QStringLiteral("  ★") : r.recipe;
        case Status:
          return r.status;
        case Started:
          return r.started.toString(QStringLiteral("yyyy-MM-dd HH:mm:ss"));
        case Duration:
          return r.duration_seconds < 0 ? QString()
                                        : QStringLiteral("%1 s").arg(r.duration_seconds, 0, 'f', 1);
      }
      return {};
    case Qt::UserRole:
      switch (c) {
        case Id:
          return r.id;
        case Recipe:
          return r.recipe.toLower();
        case Status:
          return r.status;
        case Started:
          return r.started.toMSecsSinceEpoch();
        case Duration:
          return r.duration_seconds < 0 ? std::numeric_limits<double>::max() : r.duration_seconds;
      }
      return {};
    case Qt::ForegroundRole:
      if (c == Status) {
        const QColor col = status_colour(r.status);
        if (col.isValid()) return col;
      }
      return {};
    case Qt::FontRole:
      if (r.isBaseline() && c == Recipe) {
        QFont f;
        f.setItalic(true);
        return f;
      }
      return {};
    case Qt::ToolTipRole:
      if (c == Status && !r.error.isEmpty()) return r.error;
      if (c == Duration && r.metrics.contains(QStringLiteral("estimate_seconds"))) {
        // The estimate the run was started with (compress and evaluate), against the run.
        QString t = tr("estimated %1").arg(format_seconds(r.metric(QStringLiteral("estimate_seconds"))));
        if (r.metrics.contains(QStringLiteral("estimate_peak_bytes")))
          t += tr(", peak memory %1")
                   .arg(format_bytes(quint64(r.metric(QStringLiteral("estimate_peak_bytes")))));
        if (r.duration_seconds >= 0) t += tr("; took %1").arg(format_seconds(r.duration_seconds));
        return t;
      }
      if (c == Recipe && r.pareto)
        return tr(
            "On the Pareto front of perplexity, latency and size: no other run is at least "
            "as good in all three and better in one.");
      return {};
    case Qt::TextAlignmentRole:
      if (c == Id || c == Duration) return int(Qt::AlignRight | Qt::AlignVCenter);
      return {};
  }
  return {};
}

QVariant RunTableModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal) return {};
  if (role == Qt::DisplayRole) {
    static const char* names[] = {"ID",         "Recipe",   "Status",    "Started", "Duration",
                                  "Perplexity", "KL",       "Top-1",     "Bits/w",  "Size",
                                  "Latency",    "pred. KL", "pred. ppl", "CER"};
    static_assert(std::size(names) == ColumnCount);
    return tr(names[section]);
  }
  if (role == Qt::ToolTipRole) {
    switch (section) {
      case KL:
        return tr(
            "Mean KL divergence of the next-token distribution from the original "
            "model's (nats)");
      case Top1:
        return tr("How often the most likely next token is the original model's");
      case BitsPerWeight:
        return tr("Average storage bits per weight of the compressed tensors");
      case Latency:
        return tr("Decode latency per token on this machine");
      case CER:
        return tr("Character error rate on the evaluation lines (an OCR model's runs)");
      case Recipe:
        return tr("★: on the Pareto front of perplexity, latency and size");
      case PredictedKL:
        return tr(
            "KL the run was predicted to have (mcw predict --add); its band and the "
            "error of the prediction on hover");
      case PredictedPerplexity:
        return tr(
            "Perplexity the run was predicted to have (mcw predict --add); its band and the "
            "error of the prediction on hover");
    }
  }
  return {};
}

int RunTableModel::rowOfRun(qint64 id) const {
  for (int i = 0; i < runs_.size(); ++i)
    if (runs_[i].id == id) return i;
  return -1;
}

void RunTableModel::setRuns(const QList<RunRow>& runs) {
  auto same_ids = [](const QList<RunRow>& a, qsizetype a_from, const QList<RunRow>& b) {
    if (a.size() - a_from != b.size()) return false;
    for (qsizetype i = 0; i < b.size(); ++i)
      if (a[a_from + i].id != b[i].id) return false;
    return true;
  };
  const qsizetype added = runs.size() - runs_.size();
  if (added >= 0 && same_ids(runs, added, runs_)) {
    // Newest first: new runs are on top, the old rows keep their order (and selection).
    if (added > 0) {
      beginInsertRows({}, 0, int(added) - 1);
      runs_ = runs;
      endInsertRows();
    } else {
      runs_ = runs;
    }
    if (!runs_.isEmpty())
      emit dataChanged(index(int(added), 0), index(int(runs_.size()) - 1, ColumnCount - 1));
    return;
  }
  beginResetModel();
  runs_ = runs;
  endResetModel();
}

RunFilterProxy::RunFilterProxy(QObject* parent) : QSortFilterProxyModel(parent) {
  setSortRole(Qt::UserRole);
}

void RunFilterProxy::setText(const QString& text) {
  text_ = text.trimmed();
  invalidateFilter();
}

void RunFilterProxy::setStatus(const QString& status) {
  status_ = status;
  invalidateFilter();
}

bool RunFilterProxy::filterAcceptsRow(int row, const QModelIndex& parent) const {
  const auto* m = static_cast<const RunTableModel*>(sourceModel());
  if (parent.isValid() || row >= m->runs().size()) return false;
  const RunRow& r = m->runs()[row];
  if (!status_.isEmpty() && r.status.compare(status_, Qt::CaseInsensitive) != 0) return false;
  if (text_.isEmpty()) return true;
  return r.recipe.contains(text_, Qt::CaseInsensitive) ||
         r.status.contains(text_, Qt::CaseInsensitive) ||
         r.error.contains(text_, Qt::CaseInsensitive) || QString::number(r.id) == text_;
}

}  // namespace mcw::ui
