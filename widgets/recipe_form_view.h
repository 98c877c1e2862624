// The recipe editor's form: for the selected stage, the algorithm and one editor per
// parameter of its schema (spin boxes with the schema's range, combo boxes for allowed
// values, check boxes), and the target / ignore patterns. It edits a RecipeForm and says
// so (edited()); turning the form into YAML is the panel's business (via the context).
#pragma once
#include <QMap>
#include <QWidget>

#include "widgets/editor_types.h"

class QComboBox;
class QGridLayout;
class QLabel;
class QLineEdit;

namespace mcw::ui {

class RecipeFormView : public QWidget {
  Q_OBJECT
 public:
  explicit RecipeFormView(QWidget* parent = nullptr);

  void setSpecs(const QList<AlgorithmSpecRow>& specs);
  // Shows `form`, keeping the selected stage where it still exists; never emits edited().
  void setForm(const RecipeForm& form);
  const RecipeForm& form() const { return form_; }
  int currentStage() const { return stage_; }
  void setCurrentStage(int stage);

  QComboBox* stageCombo() const { return stage_combo_; }
  QComboBox* algorithmCombo() const { return algorithm_; }
  QLineEdit* targetsEdit() const { return targets_; }
  QLineEdit* ignoreEdit() const { return ignore_; }
  QWidget* editorFor(const QString& key) const { return editors_.value(key); }

 signals:
  void edited();  // the user changed form()

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;

 signals:
  // Ctrl+Z / Ctrl+Shift+Z pressed inside the form: the panel undoes on the YAML, so that
  // form edits and text edits share one history.
  void undoRequested();
  void redoRequested();

 private:
  const AlgorithmSpecRow* spec(const QString& name) const;
  void rebuildEditors();
  void refreshValues();
  void commit(const QString& key, const QVariant& value);
  void changeAlgorithm(const QString& name);
  void watchKeys(QWidget* w);

  QList<AlgorithmSpecRow> specs_;
  RecipeForm form_;
  int stage_ = 0;
  QString built_for_;  // the algorithm the editors were made for
  QComboBox* stage_combo_;
  QComboBox* algorithm_;
  QLabel* help_;
  QLineEdit* targets_;
  QLineEdit* ignore_;
  QWidget* params_box_;
  QGridLayout* params_;  // two parameters a row: label, editor, label, editor
  QMap<QString, QWidget*> editors_;
};

}  // namespace mcw::ui
