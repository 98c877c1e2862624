#include "widgets/recipe_editor_panel.h"

#include <QAction>
#include <QFileDialog>
#include <QFontDatabase>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QScrollArea>
#include <QSplitter>
#include <QTextBlock>
#include <QTimer>
#include <QVBoxLayout>

#include "widgets/recipe_form_view.h"
#include "widgets/yaml_highlighter.h"

namespace mcw::ui {

static constexpr int kValidateDelayMs = 300;
static constexpr int kPresetRole = Qt::UserRole + 1;

QString describe_estimate(const ResourceEstimateRow& e) {
  if (!e.valid) return e.note;
  const QString duration = e.seconds < 1 ? QObject::tr("under 1 s") : format_seconds(e.seconds);
  QString s = QObject::tr("est. peak memory %1, est. duration %2")
                  .arg(format_bytes(e.peak_bytes), duration);
  if (e.exceedsFree())
    s += QObject::tr(" — more than the %1 of memory available").arg(format_bytes(e.free_bytes));
  return s;
}

RecipeEditorPanel::RecipeEditorPanel(IProjectContext& context, QWidget* parent)
    : QWidget(parent), context_(context) {
  list_ = new QListWidget;
  list_->setObjectName(QStringLiteral("recipePresets"));
  list_->setMinimumWidth(120);
  editor_ = new QPlainTextEdit;
  editor_->setObjectName(QStringLiteral("recipeYaml"));
  editor_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  editor_->setLineWrapMode(QPlainTextEdit::NoWrap);
  editor_->setTabChangesFocus(true);
  editor_->setPlaceholderText(
      tr("Pick a preset, or write a recipe:\nstages:\n  - algorithm: gptq\n"
         "    bits: 4"));
  highlighter_ = new YamlHighlighter(editor_->document());
  error_ = new QLabel;
  error_->setObjectName(QStringLiteral("recipeError"));
  error_->setWordWrap(true);
  error_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  error_->setStyleSheet(QStringLiteral("color: #e0504a;"));
  estimate_ = new QLabel;
  estimate_->setObjectName(QStringLiteral("recipeEstimate"));
  estimate_->setWordWrap(true);
  form_ = new RecipeFormView;
  form_->setSpecs(context_.algorithmSpecs());
  add_ = new QPushButton(tr("Add to project"));
  add_->setObjectName(QStringLiteral("recipeAdd"));
  add_->setToolTip(tr("Keep this recipe in the project (saved with the project)"));
  save_as_ = new QPushButton(tr("Save as…"));
  save_as_->setObjectName(QStringLiteral("recipeSaveAs"));
  auto* undo = new QPushButton(tr("Undo"));
  auto* redo = new QPushButton(tr("Redo"));
  undo->setToolTip(tr("Undo the last text or form edit (Ctrl+Z)"));
  redo->setToolTip(tr("Redo (Ctrl+Shift+Z)"));

  auto* text_column = new QWidget;
  auto* text_layout = new QVBoxLayout(text_column);
  text_layout->setContentsMargins(0, 0, 0, 0);
  text_layout->addWidget(editor_, 1);
  text_layout->addWidget(error_);
  text_layout->addWidget(estimate_);
  auto* top = new QSplitter(Qt::Horizontal);
  top->addWidget(list_);
  top->addWidget(text_column);
  top->setStretchFactor(1, 1);
  top->setSizes({170, 430});
  auto* form_box = new QGroupBox(tr("Stage"));
  auto* form_layout = new QVBoxLayout(form_box);
  auto* scroll = new QScrollArea;
  scroll->setWidget(form_);
  scroll->setWidgetResizable(true);
  scroll->setFrameShape(QFrame::NoFrame);
  form_layout->addWidget(scroll);
  auto* split = new QSplitter(Qt::Vertical);
  split->addWidget(top);
  split->addWidget(form_box);
  split->setStretchFactor(0, 1);
  split->setStretchFactor(1, 1);
  split->setChildrenCollapsible(false);
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(undo);
  buttons->addWidget(redo);
  buttons->addStretch(1);
  buttons->addWidget(save_as_);
  buttons->addWidget(add_);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(split, 1);
  layout->addLayout(buttons);

  debounce_ = new QTimer(this);
  debounce_->setSingleShot(true);
  debounce_->setInterval(kValidateDelayMs);
  connect(debounce_, &QTimer::timeout, this, &RecipeEditorPanel::validateNow);
  connect(editor_, &QPlainTextEdit::textChanged, this, [this] {
    debounce_->start();
    save_as_->setEnabled(!editor_->toPlainText().trimmed().isEmpty());
  });
  connect(list_, &QListWidget::itemActivated, this,
          [this](QListWidgetItem* item) { loadPreset(item->data(kPresetRole).toInt()); });
  connect(list_, &QListWidget::itemClicked, this,
          [this](QListWidgetItem* item) { loadPreset(item->data(kPresetRole).toInt()); });
  connect(form_, &RecipeFormView::edited, this, &RecipeEditorPanel::onFormEdited);
  connect(form_, &RecipeFormView::undoRequested, this, &RecipeEditorPanel::undo);
  connect(form_, &RecipeFormView::redoRequested, this, &RecipeEditorPanel::redo);
  connect(undo, &QPushButton::clicked, this, &RecipeEditorPanel::undo);
  connect(redo, &QPushButton::clicked, this, &RecipeEditorPanel::redo);
  connect(editor_, &QPlainTextEdit::undoAvailable, undo, &QWidget::setEnabled);
  connect(editor_, &QPlainTextEdit::redoAvailable, redo, &QWidget::setEnabled);
  undo->setEnabled(false);
  redo->setEnabled(false);
  connect(save_as_, &QPushButton::clicked, this, &RecipeEditorPanel::saveAs);
  connect(add_, &QPushButton::clicked, this, &RecipeEditorPanel::addToProject);
  save_as_->setEnabled(false);
  add_->setEnabled(false);

  context_.addViewer(this);
  refreshPresets();
  showCheck();
}

RecipeEditorPanel::~RecipeEditorPanel() { context_.removeViewer(this); }

void RecipeEditorPanel::onProjectLoaded() {
  refreshPresets();
  if (checked_)
    validateNow();  // the estimate depends on the project's evaluation text
  else
    showCheck();
}

void RecipeEditorPanel::onModelLoaded() {
  if (checked_) validateNow();  // targets and estimates depend on the model
}

void RecipeEditorPanel::refreshPresets() {
  presets_ = context_.recipePresets();
  list_->clear();
  auto header = [this](const QString& text) {
    auto* item = new QListWidgetItem(text, list_);
    QFont f = item->font();
    f.setBold(true);
    item->setFont(f);
    item->setFlags(Qt::ItemIsEnabled);  // a heading: readable, not selectable
    item->setData(kPresetRole, -1);
  };
  bool project_header = false, preset_header = false;
  for (int i = 0; i < presets_.size(); ++i) {
    const RecipePreset& p = presets_[i];
    if (p.in_project && !project_header) header(tr("Project")), project_header = true;
    if (!p.in_project && !preset_header) header(tr("Presets")), preset_header = true;
    auto* item = new QListWidgetItem(p.name, list_);
    item->setData(kPresetRole, i);
    item->setToolTip(p.source);
  }
}

void RecipeEditorPanel::loadPreset(int index) {
  if (index < 0 || index >= presets_.size()) return;
  current_name_ = presets_[index].name;
  setYaml(presets_[index].text);
}

QString RecipeEditorPanel::yaml() const { return editor_->toPlainText(); }

void RecipeEditorPanel::setYaml(const QString& text) {
  if (text != editor_->toPlainText()) {
    QTextCursor c(editor_->document());
    c.beginEditBlock();  // one step in the text's undo history
    c.select(QTextCursor::Document);
    c.insertText(text);
    c.endEditBlock();
  }
  validateNow();
}

void RecipeEditorPanel::undo() {
  editor_->undo();
  validateNow();
}

void RecipeEditorPanel::redo() {
  editor_->redo();
  validateNow();
}

void RecipeEditorPanel::validateNow() {
  debounce_->stop();
  checked_ = true;
  const QString text = editor_->toPlainText();
  if (text.trimmed().isEmpty()) {
    check_ = {};
    checked_ = false;
  } else {
    check_ = context_.checkRecipe(text);
  }
  if (check_.ok) form_->setForm(check_.form);
  showCheck();
}

void RecipeEditorPanel::showCheck() {
  const bool empty = !checked_;
  error_->setVisible(!empty && !check_.ok);
  error_->setText(check_.ok ? QString() : check_.message);
  // A broken recipe keeps its last good form on screen, greyed, until it parses again.
  form_->setEnabled(check_.ok && !check_.form.stages.isEmpty());
  if (check_.ok) {
    estimate_->setText(describe_estimate(check_.estimate));
    estimate_->setStyleSheet(
        check_.estimate.exceedsFree()
            ? QStringLiteral("background: #f5d76e; color: #3a3000; padding: 2px;")
            : QString());
    estimate_->setToolTip(check_.estimate.exceedsFree()
                              ? tr("The run may not fit in memory: close other programs, "
                                   "use fewer calibration windows or a smaller model")
                              : tr("From the model's shapes, the recipe and the calibration "
                                   "size; duration at this machine's measured GEMM speed"));
  }
  estimate_->setVisible(check_.ok);
  add_->setEnabled(check_.ok && context_.hasProject());
  markErrorLine();
}

void RecipeEditorPanel::markErrorLine() {
  QList<QTextEdit::ExtraSelection> marks;
  const int line = errorLine();
  const QTextBlock block = editor_->document()->findBlockByNumber(line - 1);
  if (line > 0 && block.isValid()) {
    QTextEdit::ExtraSelection whole;
    whole.format.setBackground(QColor(224, 80, 74, 48));
    whole.format.setProperty(QTextFormat::FullWidthSelection, true);
    whole.cursor = QTextCursor(block);
    marks << whole;
    QTextEdit::ExtraSelection text;
    text.format.setUnderlineStyle(QTextCharFormat::WaveUnderline);
    text.format.setUnderlineColor(QColor(224, 80, 74));
    text.cursor = QTextCursor(block);
    text.cursor.movePosition(QTextCursor::EndOfBlock, QTextCursor::KeepAnchor);
    marks << text;
  }
  editor_->setExtraSelections(marks);
}

void RecipeEditorPanel::onFormEdited() {
  QString error;
  const QString text = context_.recipeFormToYaml(form_->form(), &error);
  if (text.isEmpty()) {
    error_->setText(error);
    error_->setVisible(true);
    return;
  }
  setYaml(text);
}

void RecipeEditorPanel::saveAs() {
  QString path = QFileDialog::getSaveFileName(
      this, tr("Save recipe as"),
      (current_name_.isEmpty() ? tr("recipe") : current_name_) + QStringLiteral(".yaml"),
      tr("Recipes (*.yaml *.yml)"));
  if (path.isEmpty()) return;
  if (!path.endsWith(QLatin1String(".yaml")) && !path.endsWith(QLatin1String(".yml")))
    path += QStringLiteral(".yaml");
  context_.saveRecipeFile(path, yaml());
}

void RecipeEditorPanel::addToProject() {
  if (!check_.ok) return;
  // The recipe's own name: its `name` key, else the preset it started from.
  QString name = check_.form.name;
  if (name.isEmpty() || name == QLatin1String("recipe")) name = current_name_;
  context_.addRecipeToProject(name, yaml());
}

}  // namespace mcw::ui
