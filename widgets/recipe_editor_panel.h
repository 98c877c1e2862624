// Recipe editor: presets (the project's recipes and MCW's), the YAML with highlighting and
// live validation (debounced, through the context: parse, targets against the open model,
// a resource estimate) that marks the offending line and names the problem below, and a
// form generated from the algorithm schema. Form edits rewrite the YAML as one step of the
// text's own undo history, so Ctrl+Z / Ctrl+Shift+Z undo both kinds of edit.
#pragma once
#include <QWidget>

#include "widgets/project_context_api.h"

class QLabel;
class QListWidget;
class QPlainTextEdit;
class QPushButton;
class QTimer;

namespace mcw::ui {

class RecipeFormView;
class YamlHighlighter;

// "est. peak memory 1.2 GiB, est. duration 35 s" (and why there is none); shared with
// whatever else shows an estimate before a run.
QString describe_estimate(const ResourceEstimateRow& e);

class RecipeEditorPanel : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  explicit RecipeEditorPanel(IProjectContext& context, QWidget* parent = nullptr);
  ~RecipeEditorPanel() override;

  void onProjectLoaded() override;
  void onModelLoaded() override;

  // Replaces the YAML as one undoable step and validates it at once.
  void setYaml(const QString& text);
  QString yaml() const;
  void loadPreset(int index);  // index into presets()
  const QList<RecipePreset>& presets() const { return presets_; }
  void validateNow();
  void undo();
  void redo();

  const RecipeCheck& lastCheck() const { return check_; }
  int errorLine() const { return check_.ok ? 0 : check_.line; }
  bool estimateWarning() const { return check_.ok && check_.estimate.exceedsFree(); }

  QListWidget* presetList() const { return list_; }
  QPlainTextEdit* editor() const { return editor_; }
  RecipeFormView* formView() const { return form_; }
  QLabel* errorLabel() const { return error_; }
  QLabel* estimateLabel() const { return estimate_; }
  QPushButton* addButton() const { return add_; }
  QPushButton* saveAsButton() const { return save_as_; }

 private:
  void refreshPresets();
  void showCheck();
  void markErrorLine();
  void onFormEdited();
  void saveAs();
  void addToProject();

  IProjectContext& context_;
  QList<RecipePreset> presets_;
  QString current_name_;
  RecipeCheck check_;
  bool checked_ = false;
  QListWidget* list_;
  QPlainTextEdit* editor_;
  YamlHighlighter* highlighter_;
  QLabel* error_;
  QLabel* estimate_;
  RecipeFormView* form_;
  QPushButton* add_;
  QPushButton* save_as_;
  QTimer* debounce_;
};

}  // namespace mcw::ui
