// The recipe editor in the main window with a project: live validation marks the line the
// parser names and says what is wrong, fixing it clears the mark; form edits rewrite the
// YAML and Ctrl+Z / Ctrl+Shift+Z in the form undo and redo them; presets load; the
// resource estimate matches the engine's and turns into a warning when the (injected) free
// memory is below it; Add to project makes the project dirty.
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QLabel>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QtTest>

#include "engine/compress/resource_estimate.h"
#include "engine/io/model_file.h"
#include "engine/model/llama_config.h"
#include "studio_test_util.h"
#include "widgets/recipe_editor_panel.h"
#include "widgets/recipe_form_view.h"

using namespace mcw;

namespace {

int find_preset(const ui::RecipeEditorPanel& p, const QString& name) {
  for (int i = 0; i < p.presets().size(); ++i)
    if (p.presets()[i].name == name && !p.presets()[i].in_project) return i;
  return -1;
}

const char* kRtn = "stages:\n  - algorithm: rtn\n    bits: 4\n";

}  // namespace

class StudioRecipeEditorTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() {
    test::use_test_settings();
    QVERIFY(dir_.isValid());
    project_ = QString::fromStdString(test::make_test_project(dir_.path().toStdString(), "tiny"));
  }
  void init() {
    QSettings().clear();
    w_ = std::make_unique<studio::MainWindow>();
    w_->show();
    QVERIFY(w_->context().openProject(project_));
    QTRY_VERIFY_WITH_TIMEOUT(!w_->context().model().loading, 10000);
    QVERIFY(w_->context().model().error.isEmpty());
    ed_ = w_->recipeEditor();
  }
  void cleanup() { w_.reset(); }

  void invalidKeyMarksItsLineUntilFixed() {
    ed_->setYaml(kRtn);
    QVERIFY2(ed_->lastCheck().ok, qPrintable(ed_->lastCheck().message));
    QVERIFY(ed_->editor()->extraSelections().isEmpty());
    // Type a fourth line with a key rtn does not have; validation runs after a pause.
    ed_->editor()->moveCursor(QTextCursor::End);
    const QString typed = QStringLiteral("    bitz: 3");
    QTest::keyClicks(ed_->editor(), typed);
    QTRY_COMPARE_WITH_TIMEOUT(ed_->errorLine(), 4, 3000);
    const QString msg = ed_->errorLabel()->text();
    QVERIFY2(msg.contains(QLatin1String("line 4")) && msg.contains(QLatin1String("'bitz'")),
             qPrintable(msg));
    QVERIFY(!ed_->errorLabel()->isHidden());
    const auto marks = ed_->editor()->extraSelections();
    QVERIFY(!marks.isEmpty());
    for (const auto& m : marks) QCOMPARE(m.cursor.blockNumber(), 3);  // 0-based block 3
    QVERIFY(!ed_->formView()->isEnabled());
    QVERIFY(!ed_->addButton()->isEnabled());
    // Delete what was typed (and the line break): the mark and the message go away.
    for (int i = 0; i < typed.size() + 1; ++i) QTest::keyClick(ed_->editor(), Qt::Key_Backspace);
    QTRY_VERIFY_WITH_TIMEOUT(ed_->lastCheck().ok, 3000);
    QCOMPARE(ed_->errorLine(), 0);
    QVERIFY(ed_->errorLabel()->isHidden());
    QVERIFY(ed_->editor()->extraSelections().isEmpty());
  }

  void targetThatMatchesNothingIsMarkedOnItsStage() {
    ed_->setYaml(
        QStringLiteral("name: t\nstages:\n  - algorithm: rtn\n  - algorithm: magnitude\n"
                       "    targets: no.such.tensor\n"));
    QVERIFY(!ed_->lastCheck().ok);
    QCOMPARE(ed_->errorLine(), 4);  // the second stage starts on line 4
    QVERIFY2(ed_->errorLabel()->text().contains(QLatin1String("matches no tensor")),
             qPrintable(ed_->errorLabel()->text()));
  }

  void presetLoadsFromTheList() {
    const int i = find_preset(*ed_, QStringLiteral("w4g128-gptq"));
    QVERIFY(i >= 0);
    QListWidget* list = ed_->presetList();
    QListWidgetItem* item = nullptr;
    for (int r = 0; r < list->count(); ++r)
      if (list->item(r)->text() == QLatin1String("w4g128-gptq")) item = list->item(r);
    QVERIFY(item);
    list->scrollToItem(item);
    QTest::mouseClick(list->viewport(), Qt::LeftButton, {}, list->visualItemRect(item).center());
    QCOMPARE(ed_->yaml(), ed_->presets()[i].text);
    QVERIFY2(ed_->lastCheck().ok, qPrintable(ed_->lastCheck().message));
    QCOMPARE(ed_->formView()->algorithmCombo()->currentText(), QStringLiteral("gptq"));
    auto* bits = qobject_cast<QComboBox*>(ed_->formView()->editorFor(QStringLiteral("bits")));
    QVERIFY(bits);
    QCOMPARE(bits->currentText(), QStringLiteral("4"));
    // The project's own (inline) recipe is listed first, under "Project".
    QVERIFY(ed_->presets().first().in_project);
    QCOMPARE(ed_->presets().first().name, QStringLiteral("uniform-w4"));
  }

  void formEditRewritesYamlAndUndoRedoFromTheForm() {
    ed_->loadPreset(find_preset(*ed_, QStringLiteral("w4g128-gptq")));
    QVERIFY(ed_->lastCheck().ok);
    const QString before = ed_->yaml();
    auto* damp = qobject_cast<QDoubleSpinBox*>(ed_->formView()->editorFor(QStringLiteral("damp")));
    QVERIFY(damp);
    QCOMPARE(damp->value(), 0.01);
    damp->setValue(0.05);
    QVERIFY2(ed_->yaml().contains(QLatin1String("damp: 0.05")), qPrintable(ed_->yaml()));
    QVERIFY(ed_->lastCheck().ok);
    QCOMPARE(ed_->lastCheck().form.stages[0].params.value("damp").toDouble(), 0.05);
    // Ctrl+Z with the focus in the form undoes the whole rewrite, Ctrl+Shift+Z redoes it.
    damp->setFocus();
    QTest::keyClick(damp, Qt::Key_Z, Qt::ControlModifier);
    QCOMPARE(ed_->yaml(), before);
    QCOMPARE(damp->value(), 0.01);
    QTest::keyClick(damp, Qt::Key_Z, Qt::ControlModifier | Qt::ShiftModifier);
    QVERIFY(ed_->yaml().contains(QLatin1String("damp: 0.05")));
    QCOMPARE(damp->value(), 0.05);
    // A text edit after it is one more step on the same history.
    ed_->undo();
    QCOMPARE(ed_->yaml(), before);
  }

  // A recipe's recovery section, which the form does not show, survives a form edit.
  void formEditKeepsTheRecoverySection() {
    ed_->setYaml(QStringLiteral("stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n"
                                "recovery: {method: qat, steps: 40}\n"));
    QVERIFY2(ed_->lastCheck().ok, qPrintable(ed_->lastCheck().message));
    auto* bits = qobject_cast<QSpinBox*>(ed_->formView()->editorFor(QStringLiteral("bits")));
    auto* box = bits ? nullptr : qobject_cast<QComboBox*>(ed_->formView()->editorFor(QStringLiteral("bits")));
    QVERIFY(bits || box);
    if (bits) {
      bits->setValue(3);
    } else {  // what a user's pick emits
      const int i = box->findData(3);
      QVERIFY(i >= 0);
      box->setCurrentIndex(i);
      emit box->activated(i);
    }
    QVERIFY2(ed_->yaml().contains(QLatin1String("bits: 3")), qPrintable(ed_->yaml()));
    QVERIFY2(ed_->yaml().contains(QLatin1String("method: qat")), qPrintable(ed_->yaml()));
    QVERIFY2(ed_->yaml().contains(QLatin1String("steps: 40")), qPrintable(ed_->yaml()));
  }

  void algorithmChangeKeepsSharedValues() {
    ed_->setYaml(QStringLiteral("stages:\n  - algorithm: rtn\n    bits: 3\n    group_size: 64\n"));
    QComboBox* alg = ed_->formView()->algorithmCombo();
    alg->setCurrentIndex(alg->findText(QStringLiteral("gptq")));
    QVERIFY2(ed_->lastCheck().ok, qPrintable(ed_->lastCheck().message));
    const ui::RecipeStageForm& st = ed_->lastCheck().form.stages[0];
    QCOMPARE(st.algorithm, QStringLiteral("gptq"));
    QCOMPARE(st.params.value("bits").toInt(), 3);
    QCOMPARE(st.params.value("group_size").toInt(), 64);
    QVERIFY(st.params.contains("damp"));  // gptq's own keys arrive with their defaults
  }

  void estimateShowsAndWarnsBelowFreeMemory() {
    w_->context().setFreeMemoryOverride(quint64(1) << 40);
    ed_->loadPreset(find_preset(*ed_, QStringLiteral("w4g128-gptq")));
    const ui::RecipeCheck& c = ed_->lastCheck();
    QVERIFY(c.ok && c.estimate.valid);
    // The same estimate as the engine's, with the runner's settings: calibration windows
    // of min(256, the model's 128-token context).
    const ModelFile file = open_model_file(w_->context().model().path.toStdString());
    EstimateSettings set;
    set.calib_window = 128;
    set.gflops = 1;
    const ResourceEstimate e = estimate_resources(
        model_shape(llama_config_from(file)), parse_recipe(ed_->yaml().toStdString(), "x"), set);
    QCOMPARE(c.estimate.peak_bytes, quint64(e.peak_bytes));
    QVERIFY(c.estimate.seconds > 0);
    QVERIFY(!ed_->estimateLabel()->isHidden());
    QVERIFY2(ed_->estimateLabel()->text().startsWith(QLatin1String("est. peak memory ")),
             qPrintable(ed_->estimateLabel()->text()));
    QVERIFY(ed_->estimateLabel()->text().contains(QLatin1String("est. duration")));
    QVERIFY(!ed_->estimateWarning());
    QVERIFY(ed_->estimateLabel()->styleSheet().isEmpty());

    w_->context().setFreeMemoryOverride(e.peak_bytes - 1);
    ed_->validateNow();
    QVERIFY(ed_->estimateWarning());
    QVERIFY(ed_->estimateLabel()->text().contains(QLatin1String("more than")));
    QVERIFY(ed_->estimateLabel()->styleSheet().contains(QLatin1String("background")));
    // The run action's view of a project recipe uses the same context method.
    QVERIFY(w_->context().addRecipeToProject(QStringLiteral("g"), ed_->yaml()));
    const ui::ResourceEstimateRow run = w_->context().estimateProjectRecipe(QStringLiteral("g"));
    QVERIFY(run.valid && run.exceedsFree());
    QCOMPARE(run.peak_bytes, quint64(e.peak_bytes));
  }

  void addToProjectMakesItDirtyAndListsIt() {
    ed_->setYaml(QStringLiteral("name: mine\nstages:\n  - algorithm: magnitude\n"));
    QVERIFY(ed_->addButton()->isEnabled());
    QVERIFY(!w_->context().isDirty());
    QTest::mouseClick(ed_->addButton(), Qt::LeftButton);
    QVERIFY(w_->context().isDirty());
    bool listed = false;
    for (const ui::RecipeRow& r : w_->context().project().recipes)
      listed = listed || r.name == QLatin1String("mine");
    QVERIFY(listed);
    // Listed with the project's recipes, after those it had, before the shipped presets.
    const int n = int(w_->context().project().recipes.size());
    QCOMPARE(ed_->presets()[n - 1].name, QStringLiteral("mine"));
    QVERIFY(ed_->presets()[n - 1].in_project);
    QVERIFY(!ed_->presets()[n].in_project);
  }

  void saveAsWritesTheFile() {
    const QString path = dir_.path() + "/saved.yaml";
    QVERIFY(w_->context().saveRecipeFile(path, QString::fromLatin1(kRtn)));
    QFile f(path);
    QVERIFY(f.open(QIODevice::ReadOnly));
    QCOMPARE(QString::fromUtf8(f.readAll()), QString::fromLatin1(kRtn));
    QVERIFY(!w_->context().saveRecipeFile(dir_.path() + "/no/such/dir/x.yaml", kRtn));
  }

 private:
  QTemporaryDir dir_;
  QString project_;
  std::unique_ptr<studio::MainWindow> w_;
  ui::RecipeEditorPanel* ed_ = nullptr;
};

QTEST_MAIN(StudioRecipeEditorTest)
#include "test_studio_recipe_editor.moc"
