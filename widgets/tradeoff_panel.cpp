#include "widgets/tradeoff_panel.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QSet>
#include <QSettings>
#include <QSignalBlocker>
#include <QVBoxLayout>
#include <cmath>

#include "widgets/tradeoff_plot.h"

namespace mcw::ui {

namespace {

struct AxisChoice {
  const char* metric;
  const char* title;
};
// A transformer's runs have perplexity, top-1 and ms/token; an OCR recogniser's (an ONNX
// graph's project) CER and ms/image; both have KL, size and bits per weight.
const AxisChoice kYChoices[] = {{"perplexity", "Perplexity"},
                                {"kl", "KL divergence (nats)"},
                                {"top1", "Top-1 agreement"},
                                {"cer", "Character error rate"}};
const AxisChoice kXChoices[] = {{"latency_ms_per_token", "Latency (ms/token)"},
                                {"size_bytes", "Model size"},
                                {"bits_per_weight", "Bits per weight"},
                                {"latency_ms_per_image", "Latency (ms/image)"}};

QString format_value(const QString& metric, double v) {
  if (metric == QLatin1String("size_bytes")) return format_bytes(quint64(std::max(0.0, v)));
  if (metric == QLatin1String("top1") || metric == QLatin1String("cer"))
    return QStringLiteral("%1 %").arg(v * 100, 0, 'f', 2);
  if (metric == QLatin1String("latency_ms_per_image"))
    return QStringLiteral("%1 ms/image").arg(v, 0, 'g', 4);
  if (metric == QLatin1String("latency_ms_per_token"))
    return QStringLiteral("%1 ms/token").arg(v, 0, 'g', 4);
  return QString::number(v, 'g', 5);
}

// The name a prediction of `metric` is stored under (mcw predict's keys, "predicted_"
// before them); latency is predicted as decode ms/token without the suffix.
QString predicted_name(const QString& metric) {
  if (metric == QLatin1String("latency_ms_per_token"))
    return QStringLiteral("predicted_latency_ms");
  return QStringLiteral("predicted_") + metric;
}

// The hollow marker's tooltip: each predicted figure beside the measured one, so that the
// predictor's error reads without opening the Runs panel.
QString prediction_tooltip(const RunRow& r, const QString& xm, const QString& ym) {
  QString tip =
      QStringLiteral("<b>%1</b> (predicted) &nbsp;run #%2").arg(r.recipe.toHtmlEscaped()).arg(r.id);
  tip += QStringLiteral(
      "<table><tr><td></td><td align=right>&nbsp;predicted</td><td "
      "align=right>&nbsp;measured</td><td align=right>&nbsp;error</td></tr>");
  for (const char* m :
       {"perplexity", "kl", "latency_ms_per_token", "size_bytes", "bits_per_weight"}) {
    const QString name = QString::fromLatin1(m), pred = predicted_name(name);
    if (!r.metrics.contains(pred)) continue;
    const double pv = r.metric(pred);
    QString value = format_value(name, pv);
    const QString lo = pred + QStringLiteral("_low"), hi = pred + QStringLiteral("_high");
    if (r.metrics.contains(lo) && r.metrics.contains(hi))
      value += QStringLiteral(" [%1, %2]")
                   .arg(format_value(name, r.metric(lo)), format_value(name, r.metric(hi)));
    QString measured, error;
    if (r.metrics.contains(name)) {
      const double mv = r.metric(name);
      measured = format_value(name, mv);
      if (pv != 0)
        error = QStringLiteral("%1%2 %")
                    .arg(mv >= pv ? "+" : "")
                    .arg((mv - pv) / std::abs(pv) * 100, 0, 'f', 1);
    }
    const bool axis = name == xm || name == ym;
    tip += QStringLiteral(
               "<tr><td>%1%2%3</td><td align=right>&nbsp;%4</td><td align=right>&nbsp;%5</td>"
               "<td align=right>&nbsp;%6</td></tr>")
               .arg(axis ? "<b>" : "", name, axis ? "</b>" : "", value.toHtmlEscaped(),
                    measured.toHtmlEscaped(), error);
  }
  tip += QStringLiteral("</table>");
  if (!r.metrics.contains(predicted_name(xm)))
    tip += QObject::tr("<i>%1 not predicted: drawn at the measured value</i>").arg(xm);
  else if (!r.metrics.contains(predicted_name(ym)))
    tip += QObject::tr("<i>%1 not predicted: drawn at the measured value</i>").arg(ym);
  return tip;
}

PlotAxis make_axis(const QString& metric, const QString& title) {
  PlotAxis a;
  a.title = title;
  if (metric == QLatin1String("size_bytes"))
    a.format = [](double v) { return format_bytes(quint64(std::max(0.0, v))); };
  else if (metric == QLatin1String("top1"))
    a.format = [](double v) {
      const double pct = v * 100;
      return QStringLiteral("%1 %").arg(pct, 0, 'f',
                                        std::abs(pct - std::round(pct)) < 1e-6 ? 0 : 1);
    };
  return a;
}

}  // namespace

TradeoffPanel::TradeoffPanel(IProjectContext& context, QWidget* parent)
    : QWidget(parent), context_(context) {
  y_box_ = new QComboBox(this);
  y_box_->setObjectName(QStringLiteral("tradeoffY"));
  for (const AxisChoice& c : kYChoices) y_box_->addItem(tr(c.title), QString::fromLatin1(c.metric));
  x_box_ = new QComboBox(this);
  x_box_->setObjectName(QStringLiteral("tradeoffX"));
  for (const AxisChoice& c : kXChoices) x_box_->addItem(tr(c.title), QString::fromLatin1(c.metric));
  QSettings settings;
  y_box_->setCurrentIndex(std::max(0, y_box_->findData(settings.value("tradeoff/y"))));
  x_box_->setCurrentIndex(std::max(0, x_box_->findData(settings.value("tradeoff/x"))));
  summary_ = new QLabel(this);
  summary_->setObjectName(QStringLiteral("tradeoffSummary"));
  whatif_note_ = new QLabel(this);
  whatif_note_->setObjectName(QStringLiteral("tradeoffWhatIf"));
  plot_ = new TradeoffPlot(this);
  plot_->setEmptyText(tr("No finished runs yet.\nRun a recipe from the Project panel."));

  auto* bar = new QHBoxLayout;
  bar->addWidget(new QLabel(tr("Accuracy:"), this));
  bar->addWidget(y_box_);
  bar->addSpacing(8);
  bar->addWidget(new QLabel(tr("Cost:"), this));
  bar->addWidget(x_box_);
  bar->addStretch(1);
  bar->addWidget(whatif_note_);
  bar->addWidget(summary_);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addLayout(bar);
  layout->addWidget(plot_, 1);

  auto axes_changed = [this] {
    QSettings s;
    s.setValue("tradeoff/y", yMetric());
    s.setValue("tradeoff/x", xMetric());
    rebuild();
  };
  connect(y_box_, &QComboBox::currentIndexChanged, this, axes_changed);
  connect(x_box_, &QComboBox::currentIndexChanged, this, axes_changed);
  connect(plot_, &TradeoffPlot::pointClicked, this, [this](qint64 id) {
    Selection s = context_.selection();
    s.run_id = id;
    context_.setSelection(s);
  });
  context_.addViewer(this);
  rebuild();
}

TradeoffPanel::~TradeoffPanel() { context_.removeViewer(this); }

void TradeoffPanel::onProjectLoaded() { rebuild(); }
void TradeoffPanel::onRunUpdated(qint64) { rebuild(); }
void TradeoffPanel::onSelectionChanged() { plot_->setSelected(context_.selection().run_id); }
void TradeoffPanel::onAssignmentChanged() { updateWhatIf(); }

void TradeoffPanel::updateWhatIf() {
  const AssignmentPrediction& p = context_.assignmentPrediction();
  const QString xm = xMetric(), ym = yMetric();
  double x = std::nan(""), y = std::nan(""), lo = std::nan(""), hi = std::nan("");
  if (xm == QLatin1String("bits_per_weight")) x = p.bits_per_weight;
  else if (xm == QLatin1String("size_bytes")) x = p.size_bytes;
  else x = p.latency_ms;
  if (ym == QLatin1String("kl")) y = p.kl, lo = p.kl_low, hi = p.kl_high;
  else if (ym == QLatin1String("perplexity")) y = p.perplexity, lo = p.perplexity_low, hi = p.perplexity_high;
  WhatIfMarker m;
  m.shown = p.valid && std::isfinite(x) && std::isfinite(y);
  m.x = x, m.y = y;
  if (std::isfinite(lo) && std::isfinite(hi)) m.y_lo = lo, m.y_hi = hi;
  m.label = tr("what-if");
  m.tooltip = tr("<b>what-if assignment</b> (predicted, not run)<br>%1 layers compressed, %2 kept")
                  .arg(p.compressed)
                  .arg(p.kept);
  m.tooltip += QStringLiteral("<table>");
  auto row = [&](const QString& name, double v, double vlo, double vhi) {
    if (!std::isfinite(v)) return;
    QString text = format_value(name, v);
    if (std::isfinite(vlo) && std::isfinite(vhi))
      text += QStringLiteral(" [%1, %2]").arg(format_value(name, vlo), format_value(name, vhi));
    m.tooltip += QStringLiteral("<tr><td>%1</td><td align=right>&nbsp;%2</td></tr>")
                     .arg(name, text.toHtmlEscaped());
  };
  row(QStringLiteral("perplexity"), p.perplexity, p.perplexity_low, p.perplexity_high);
  row(QStringLiteral("kl"), p.kl, p.kl_low, p.kl_high);
  row(QStringLiteral("latency_ms_per_token"), p.latency_ms, std::nan(""), std::nan(""));
  row(QStringLiteral("size_bytes"), p.size_bytes, std::nan(""), std::nan(""));
  row(QStringLiteral("bits_per_weight"), p.bits_per_weight, std::nan(""), std::nan(""));
  m.tooltip += QStringLiteral("</table>");
  m.tooltip += p.calibration_runs >= 2
                   ? tr("KL band from %1 runs that recorded a prediction").arg(p.calibration_runs)
                   : tr("<i>no KL band yet: it needs two runs made from predictions</i>");
  plot_->setWhatIf(m);
  const bool budget = p.budget_metric == xm && std::isfinite(p.budget);
  plot_->setBudgetLine(budget ? p.budget : std::nan(""),
                       budget ? tr("search budget %1").arg(format_value(xm, p.budget)) : QString());
  // Why an assignment being edited is not on the plot.
  QString note;
  if (p.valid && !m.shown) {
    if (!std::isfinite(x))
      note = tr("what-if: latency is not predicted here (mcw predict --latency)");
    else if (ym == QLatin1String("top1"))
      note = tr("what-if: top-1 is not predicted");
    else if (ym == QLatin1String("perplexity") && p.quantity == QLatin1String("KL"))
      note = tr("what-if: perplexity needs a baseline run and a finished compressed run");
    else
      note = tr("what-if: the heatmap holds %1, not a KL").arg(p.quantity);
  }
  whatif_note_->setText(note);
  whatif_note_->setVisible(!note.isEmpty());
}

QString TradeoffPanel::xMetric() const { return x_box_->currentData().toString(); }
QString TradeoffPanel::yMetric() const { return y_box_->currentData().toString(); }
int TradeoffPanel::pointCount() const { return plot_->pointCount(); }

// When no finished run has both metrics of the axes but some have another pair (a project
// of the other kind opened since the axes were chosen), the first such pair.
void TradeoffPanel::pickAxesWithData() {
  QList<const RunRow*> done;
  for (const RunRow& r : context_.runs())
    if (r.status == QLatin1String("done")) done.push_back(&r);
  auto has = [&](const QString& y, const QString& x) {
    return std::any_of(done.begin(), done.end(), [&](const RunRow* r) {
      return r->metrics.contains(x) && r->metrics.contains(y);
    });
  };
  if (done.isEmpty() || has(yMetric(), xMetric())) return;
  for (int yi = 0; yi < y_box_->count(); ++yi)
    for (int xi = 0; xi < x_box_->count(); ++xi)
      if (has(y_box_->itemData(yi).toString(), x_box_->itemData(xi).toString())) {
        const QSignalBlocker by(y_box_), bx(x_box_);
        y_box_->setCurrentIndex(yi), x_box_->setCurrentIndex(xi);
        return;
      }
}

void TradeoffPanel::rebuild() {
  pickAxesWithData();
  const QString xm = xMetric(), ym = yMetric();
  const bool maximize_y = ym == QLatin1String("top1");
  const QList<qint64> front_ids = context_.paretoFront(xm, ym, maximize_y);
  const QSet<qint64> front(front_ids.begin(), front_ids.end());
  QList<PlotPoint> points;
  int runs_done = 0;
  for (const RunRow& r : context_.runs()) {
    if (r.status != QLatin1String("done")) continue;
    ++runs_done;
    if (!r.metrics.contains(xm) || !r.metrics.contains(ym)) continue;
    PlotPoint p;
    p.id = r.id;
    p.x = r.metrics.value(xm);
    p.y = r.metrics.value(ym);
    p.size = r.metrics.value(QStringLiteral("size_bytes"));
    p.label = r.recipe;
    p.baseline = r.isBaseline();
    p.front = front.contains(r.id);
    const auto metric = [&](const char* name) { return r.metrics.value(QLatin1String(name)); };
    if (xm == QLatin1String("latency_ms_per_token")) {
      p.x_lo = metric("latency_ms_per_token_min"), p.x_hi = metric("latency_ms_per_token_max");
      p.x_busy = metric("latency_busy") != 0;
    }
    // Where the run was predicted to land, on an axis without a prediction (latency when
    // mcw predict ran without --latency, top-1 always) at the measured value.
    const QString pxm = predicted_name(xm), pym = predicted_name(ym);
    if (r.metrics.contains(pxm) || r.metrics.contains(pym)) {
      p.predicted = true;
      p.pred_x = r.metric(pxm, p.x);
      p.pred_y = r.metric(pym, p.y);
      const QString lo = pym + QStringLiteral("_low"), hi = pym + QStringLiteral("_high");
      if (r.metrics.contains(pym) && r.metrics.contains(lo) && r.metrics.contains(hi))
        p.pred_y_lo = r.metric(lo), p.pred_y_hi = r.metric(hi);
      p.pred_tooltip = prediction_tooltip(r, xm, ym);
    }
    const QString before = ym + QStringLiteral("_before_recovery");
    if (r.metrics.contains(before)) p.recovered = true, p.before_y = r.metric(before);
    QString tip = QStringLiteral("<b>%1</b> &nbsp;run #%2").arg(r.recipe.toHtmlEscaped()).arg(r.id);
    if (p.front) tip += tr(" &nbsp;<i>(on the Pareto front)</i>");
    tip += QStringLiteral("<table>");
    for (const char* m : {"perplexity", "kl", "top1", "cer", "latency_ms_per_token",
                          "latency_ms_per_image", "size_bytes", "bits_per_weight"}) {
      const QString name = QString::fromLatin1(m);
      if (!r.metrics.contains(name)) continue;
      const bool axis = name == xm || name == ym;
      tip += QStringLiteral("<tr><td>%1%2%3</td><td align=right>&nbsp;%4</td></tr>")
                 .arg(axis ? "<b>" : "", name, axis ? "</b>" : "",
                      format_value(name, r.metrics.value(name)));
    }
    tip += QStringLiteral("</table>");
    if (r.metrics.contains(QStringLiteral("latency_ms_per_token_max")))
      tip += tr("latency over repetitions: %1 – %2 ms/token")
                 .arg(metric("latency_ms_per_token_min"), 0, 'g', 4)
                 .arg(metric("latency_ms_per_token_max"), 0, 'g', 4);
    if (p.recovered)
      tip += tr("<br>recovered by fine-tuning: %1 was %2 before")
                 .arg(ym, format_value(ym, p.before_y));
    if (r.metrics.contains(QStringLiteral("latency_shared_from_run")))
      tip += tr("<br>latency shared with run #%1 (the same layouts)")
                 .arg(qint64(metric("latency_shared_from_run")));
    if (metric("latency_busy") != 0)
      tip += tr("<br><b>measured on a busy machine:</b> other processes took %1 % of the CPUs")
                 .arg(metric("latency_others_cpu") * 100, 0, 'f', 0);
    p.tooltip = tip;
    points.push_back(p);
  }
  const int yi = y_box_->currentIndex(), xi = x_box_->currentIndex();
  plot_->setData(points, make_axis(xm, x_box_->itemText(xi)), make_axis(ym, y_box_->itemText(yi)),
                 maximize_y);
  plot_->setSelected(context_.selection().run_id);
  updateWhatIf();
  summary_->setText(points.isEmpty()
                        ? QString()
                        : tr("%1 runs, %2 on the front").arg(points.size()).arg(front.size()));
  summary_->setToolTip(
      runs_done > points.size()
          ? tr("%1 finished runs lack one of the two metrics").arg(runs_done - points.size())
          : QString());
}

}  // namespace mcw::ui
