#include "widgets/recipe_form_view.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QVBoxLayout>
#include <cmath>

namespace mcw::ui {

static QStringList split_patterns(const QString& text) {
  QStringList out;
  for (const QString& p : text.split(QLatin1Char(','), Qt::SkipEmptyParts))
    if (!p.trimmed().isEmpty()) out << p.trimmed();
  return out;
}

static bool same_value(const QVariant& a, const QVariant& b) {
  return a.toString() == b.toString();  // 4 == 4.0 == "4" for the schema's scalars
}

static QString value_label(const ParamSpecRow& p, const QVariant& v) {
  if (p.key == QLatin1String("group_size")) {
    if (v.toLongLong() == 0) return QObject::tr("per channel");
    if (v.toLongLong() < 0) return QObject::tr("per tensor");
  }
  if (p.key == QLatin1String("quantize_bits") && v.toLongLong() == 0) return QObject::tr("off");
  return v.toString();
}

RecipeFormView::RecipeFormView(QWidget* parent) : QWidget(parent) {
  stage_combo_ = new QComboBox(this);
  stage_combo_->setObjectName(QStringLiteral("recipeStage"));
  algorithm_ = new QComboBox(this);
  algorithm_->setObjectName(QStringLiteral("recipeAlgorithm"));
  help_ = new QLabel(this);
  help_->setWordWrap(true);
  help_->setForegroundRole(QPalette::PlaceholderText);
  targets_ = new QLineEdit(this);
  targets_->setObjectName(QStringLiteral("recipeTargets"));
  targets_->setToolTip(tr("Comma-separated globs on tensor names, or regexes written re:..."));
  ignore_ = new QLineEdit(this);
  ignore_->setObjectName(QStringLiteral("recipeIgnore"));
  ignore_->setPlaceholderText(tr("none"));
  ignore_->setToolTip(targets_->toolTip());
  params_box_ = new QWidget(this);
  params_ = new QGridLayout(params_box_);
  params_->setContentsMargins(0, 0, 0, 0);
  params_->setColumnStretch(1, 1);
  params_->setColumnStretch(3, 1);
  params_->setHorizontalSpacing(8);

  auto* which = new QHBoxLayout;  // stage and algorithm share a row: the form is short of height
  which->setContentsMargins(0, 0, 0, 0);
  which->addWidget(stage_combo_, 1);
  which->addWidget(new QLabel(tr("Algorithm")));
  which->addWidget(algorithm_, 1);
  auto* top = new QFormLayout;
  top->setContentsMargins(0, 0, 0, 0);
  top->addRow(tr("Stage"), which);
  top->addRow(QString(), help_);
  top->addRow(tr("Targets"), targets_);
  top->addRow(tr("Ignore"), ignore_);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addLayout(top);
  layout->addWidget(params_box_);
  layout->addStretch(1);

  connect(stage_combo_, &QComboBox::currentIndexChanged, this,
          [this](int i) { setCurrentStage(i); });
  connect(algorithm_, &QComboBox::currentIndexChanged, this,
          [this](int i) { changeAlgorithm(algorithm_->itemText(i)); });
  auto patterns = [this](QLineEdit* edit, bool targets) {
    connect(edit, &QLineEdit::editingFinished, this, [this, edit, targets] {
      if (stage_ >= form_.stages.size()) return;
      QStringList& list = targets ? form_.stages[stage_].targets : form_.stages[stage_].ignore;
      const QStringList now = split_patterns(edit->text());
      if (now == list) return;
      list = now;
      emit edited();
    });
  };
  patterns(targets_, true);
  patterns(ignore_, false);
  for (QWidget* w : {static_cast<QWidget*>(stage_combo_), static_cast<QWidget*>(algorithm_),
                     static_cast<QWidget*>(targets_), static_cast<QWidget*>(ignore_)})
    watchKeys(w);
  setEnabled(false);
}

void RecipeFormView::watchKeys(QWidget* w) {
  w->installEventFilter(this);
  for (QWidget* child : w->findChildren<QWidget*>()) child->installEventFilter(this);
}

bool RecipeFormView::eventFilter(QObject* watched, QEvent* event) {
  if (event->type() == QEvent::ShortcutOverride || event->type() == QEvent::KeyPress) {
    auto* key = static_cast<QKeyEvent*>(event);
    const bool undo = key->matches(QKeySequence::Undo);
    const bool redo = key->matches(QKeySequence::Redo);
    if (undo || redo) {
      // Claim the key from the editors' own (per-widget) undo, then undo the recipe.
      event->accept();
      if (event->type() == QEvent::KeyPress) emit(undo ? undoRequested() : redoRequested());
      return true;
    }
  }
  return QWidget::eventFilter(watched, event);
}

void RecipeFormView::setSpecs(const QList<AlgorithmSpecRow>& specs) {
  specs_ = specs;
  const QSignalBlocker block(algorithm_);
  algorithm_->clear();
  for (const AlgorithmSpecRow& s : specs_) {
    algorithm_->addItem(s.name);
    algorithm_->setItemData(algorithm_->count() - 1, s.help, Qt::ToolTipRole);
  }
}

const AlgorithmSpecRow* RecipeFormView::spec(const QString& name) const {
  for (const AlgorithmSpecRow& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

void RecipeFormView::setForm(const RecipeForm& form) {
  form_ = form;
  stage_ = std::clamp(stage_, 0, std::max(0, int(form_.stages.size()) - 1));
  {
    const QSignalBlocker block(stage_combo_);
    stage_combo_->clear();
    for (int i = 0; i < form_.stages.size(); ++i)
      stage_combo_->addItem(tr("%1: %2  (line %3)")
                                .arg(i + 1)
                                .arg(form_.stages[i].algorithm)
                                .arg(form_.stages[i].line));
    stage_combo_->setCurrentIndex(stage_);
  }
  setEnabled(!form_.stages.isEmpty());
  const QString alg = form_.stages.isEmpty() ? QString() : form_.stages[stage_].algorithm;
  if (alg != built_for_) rebuildEditors();
  refreshValues();
}

void RecipeFormView::setCurrentStage(int stage) {
  if (stage < 0 || stage >= form_.stages.size()) return;
  stage_ = stage;
  {
    const QSignalBlocker block(stage_combo_);
    stage_combo_->setCurrentIndex(stage);
  }
  if (form_.stages[stage_].algorithm != built_for_) rebuildEditors();
  refreshValues();
}

void RecipeFormView::rebuildEditors() {
  while (QLayoutItem* item = params_->takeAt(0)) {
    delete item->widget();
    delete item;
  }
  editors_.clear();
  built_for_ = form_.stages.isEmpty() ? QString() : form_.stages[stage_].algorithm;
  const AlgorithmSpecRow* s = spec(built_for_);
  help_->setText(s ? s->help : QString());
  if (!s) return;
  int index = 0;
  for (const ParamSpecRow& p : s->params) {
    QWidget* editor = nullptr;
    const QString key = p.key;
    if (!p.allowed.isEmpty()) {
      auto* combo = new QComboBox;
      for (const QVariant& v : p.allowed) combo->addItem(value_label(p, v), v);
      connect(combo, &QComboBox::activated, this,
              [this, combo, key](int i) { commit(key, combo->itemData(i)); });
      editor = combo;
    } else if (p.type == QLatin1String("bool")) {
      auto* check = new QCheckBox;
      connect(check, &QCheckBox::toggled, this, [this, key](bool on) { commit(key, on); });
      editor = check;
    } else if (p.type == QLatin1String("int")) {
      auto* spin = new QSpinBox;
      spin->setRange(p.min < p.max ? int(p.min) : -1000000000,
                     p.min < p.max ? int(p.max) : 1000000000);
      spin->setKeyboardTracking(false);  // one edit per committed value, not per keystroke
      connect(spin, &QSpinBox::valueChanged, this,
              [this, key](int v) { commit(key, qlonglong(v)); });
      editor = spin;
    } else if (p.type == QLatin1String("number")) {
      auto* spin = new QDoubleSpinBox;
      spin->setDecimals(4);
      spin->setRange(p.min < p.max ? p.min : -1e9, p.min < p.max ? p.max : 1e9);
      spin->setSingleStep(p.min < p.max ? std::max(1e-4, (p.max - p.min) / 100) : 0.1);
      spin->setKeyboardTracking(false);
      connect(spin, &QDoubleSpinBox::valueChanged, this, [this, key](double v) { commit(key, v); });
      editor = spin;
    } else {
      auto* line = new QLineEdit;
      connect(line, &QLineEdit::editingFinished, this,
              [this, line, key] { commit(key, line->text()); });
      editor = line;
    }
    editor->setObjectName(QStringLiteral("param_") + key);
    editor->setToolTip(p.help);
    watchKeys(editor);
    editors_.insert(key, editor);
    auto* label = new QLabel(key);
    label->setToolTip(p.help);
    label->setBuddy(editor);
    params_->addWidget(label, index / 2, 2 * (index % 2), Qt::AlignRight | Qt::AlignVCenter);
    params_->addWidget(editor, index / 2, 2 * (index % 2) + 1);
    ++index;
  }
}

void RecipeFormView::refreshValues() {
  if (form_.stages.isEmpty()) return;
  const RecipeStageForm& st = form_.stages[stage_];
  {
    const QSignalBlocker block(algorithm_);
    algorithm_->setCurrentIndex(algorithm_->findText(st.algorithm));
  }
  targets_->setText(st.targets.join(QStringLiteral(", ")));
  ignore_->setText(st.ignore.join(QStringLiteral(", ")));
  for (auto it = editors_.begin(); it != editors_.end(); ++it) {
    const QVariant v = st.params.value(it.key());
    QWidget* w = it.value();
    const QSignalBlocker block(w);
    if (auto* combo = qobject_cast<QComboBox*>(w)) {
      for (int i = 0; i < combo->count(); ++i)
        if (same_value(combo->itemData(i), v)) combo->setCurrentIndex(i);
    } else if (auto* check = qobject_cast<QCheckBox*>(w)) {
      check->setChecked(v.toBool());
    } else if (auto* spin = qobject_cast<QSpinBox*>(w)) {
      spin->setValue(int(v.toLongLong()));
    } else if (auto* dspin = qobject_cast<QDoubleSpinBox*>(w)) {
      dspin->setValue(v.toDouble());
    } else if (auto* line = qobject_cast<QLineEdit*>(w)) {
      line->setText(v.toString());
    }
  }
}

void RecipeFormView::commit(const QString& key, const QVariant& value) {
  if (stage_ >= form_.stages.size()) return;
  QVariantMap& params = form_.stages[stage_].params;
  if (params.contains(key) && same_value(params.value(key), value) &&
      params.value(key).typeId() == value.typeId())
    return;
  params[key] = value;
  emit edited();
}

// A new algorithm starts from its defaults; values of keys both share are kept where the
// new schema allows them (bits 4 stays 4 from rtn to gptq).
void RecipeFormView::changeAlgorithm(const QString& name) {
  if (stage_ >= form_.stages.size() || form_.stages[stage_].algorithm == name) return;
  const AlgorithmSpecRow* s = spec(name);
  if (!s) return;
  RecipeStageForm& st = form_.stages[stage_];
  QVariantMap params;
  for (const ParamSpecRow& p : s->params) {
    QVariant v = p.fallback;
    if (st.params.contains(p.key)) {
      const QVariant old = st.params.value(p.key);
      bool ok =
          p.allowed.isEmpty() || std::any_of(p.allowed.begin(), p.allowed.end(),
                                             [&](const QVariant& a) { return same_value(a, old); });
      if (p.min < p.max) ok = ok && old.toDouble() >= p.min && old.toDouble() <= p.max;
      if (ok) v = old;
    }
    if (v.isValid()) params[p.key] = v;
  }
  st.algorithm = name;
  st.params = params;
  rebuildEditors();
  refreshValues();
  emit edited();
}

}  // namespace mcw::ui
