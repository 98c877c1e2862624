// The main window with a project: the Model panel's rows and statistics (checked against
// the engine directly), filtering and sorting, the Project panel's problems, the start
// page, drag and drop, and the layout and theme kept in QSettings.
#include <QDockWidget>
#include <QDropEvent>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMimeData>
#include <QSortFilterProxyModel>
#include <QTableView>
#include <QtTest>

#include "engine/kernels/stored_matmul.h"
#include <cmath>

#include "engine/io/model_file.h"
#include "engine/kernels/tensor_stats.h"
#include "studio_test_util.h"
#include "widgets/model_panel.h"
#include "widgets/project_panel.h"
#include "widgets/start_page.h"
#include "widgets/tensor_table_model.h"

using namespace mcw;
using mcw::ui::TensorTableModel;

class StudioWindowTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() {
    test::use_test_settings();
    QVERIFY(dir_.isValid());
    project_ = QString::fromStdString(test::make_test_project(dir_.path().toStdString(), "tiny"));
  }
  void init() { QSettings().clear(); }

  void modelPanelShowsOneRowPerTensorAndStatsFillIn() {
    studio::MainWindow w;
    QVERIFY(w.context().openProject(project_));
    const ModelFile ref = open_model_file(w.context().project().model_path.toStdString());
    QTableView* table = w.modelPanel()->table();
    QTRY_COMPARE_WITH_TIMEOUT(table->model()->rowCount(), int(ref.tensors.size()), 10000);
    QTRY_VERIFY_WITH_TIMEOUT(test::all_stats_ready(w.context().model()), 10000);
    QAbstractItemModel* m = table->model();
    for (int r = 0; r < m->rowCount(); ++r) {
      const Tensor& t = ref.tensors[size_t(r)];
      QCOMPARE(m->index(r, TensorTableModel::Name).data().toString(),
               QString::fromStdString(t.name()));
      QCOMPARE(m->index(r, TensorTableModel::Params).data(Qt::UserRole).toULongLong(),
               quint64(t.numel()));
      const quint64 macs = m->index(r, TensorTableModel::Macs).data(Qt::UserRole).toULongLong();
      // 2-D weights cost rows x cols MACs per token; the embedding table (with a
      // separate output.weight) and the norm vectors cost none.
      const bool matmul = t.ndim() == 2 && t.name() != "token_embd.weight";
      QCOMPARE(macs, matmul ? quint64(t.dim(0) * t.dim(1)) : quint64(0));
      // Statistics against a direct computation over the same values.
      const std::vector<float> v = t.to_f32();
      double lo = v[0], hi = v[0], sum = 0;
      for (float x : v) lo = std::min<double>(lo, x), hi = std::max<double>(hi, x), sum += x;
      QCOMPARE(m->index(r, TensorTableModel::Min).data(Qt::UserRole).toDouble(), lo);
      QCOMPARE(m->index(r, TensorTableModel::Max).data(Qt::UserRole).toDouble(), hi);
      const double mean = m->index(r, TensorTableModel::Mean).data(Qt::UserRole).toDouble();
      QVERIFY(std::abs(mean - sum / double(v.size())) < 1e-6);
      QVERIFY(m->index(r, TensorTableModel::Min).data().toString() != QStringLiteral("…"));
    }
  }

  void filterBoxFiltersByName() {
    studio::MainWindow w;
    QVERIFY(w.context().openProject(project_));
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().model().tensors.isEmpty(), 10000);
    const int all = w.modelPanel()->visibleRowCount();
    QTest::keyClicks(w.modelPanel()->filterBox(), QStringLiteral("ATTN_Q"));
    QCOMPARE(w.modelPanel()->visibleRowCount(), 2);  // blk.0 and blk.1, case-insensitive
    QAbstractItemModel* m = w.modelPanel()->table()->model();
    for (int r = 0; r < m->rowCount(); ++r)
      QVERIFY(m->index(r, 0).data().toString().endsWith(QStringLiteral("attn_q.weight")));
    w.modelPanel()->filterBox()->clear();
    QCOMPARE(w.modelPanel()->visibleRowCount(), all);
    QTest::keyClicks(w.modelPanel()->filterBox(), QStringLiteral("no-such-tensor"));
    QCOMPARE(w.modelPanel()->visibleRowCount(), 0);
  }

  void headerClickSortsNumerically() {
    studio::MainWindow w;
    QVERIFY(w.context().openProject(project_));
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().model().tensors.isEmpty(), 10000);
    QTableView* table = w.modelPanel()->table();
    table->sortByColumn(TensorTableModel::Params, Qt::DescendingOrder);
    QAbstractItemModel* m = table->model();
    for (int r = 1; r < m->rowCount(); ++r)
      QVERIFY(m->index(r - 1, TensorTableModel::Params).data(Qt::UserRole).toULongLong() >=
              m->index(r, TensorTableModel::Params).data(Qt::UserRole).toULongLong());
    QCOMPARE(m->index(0, 0).data().toString(), QStringLiteral("token_embd.weight"));
  }

  void selectingARowSetsTheContextSelection() {
    studio::MainWindow w;
    QVERIFY(w.context().openProject(project_));
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().model().tensors.isEmpty(), 10000);
    w.modelPanel()->table()->selectRow(3);
    QCOMPARE(w.context().selection().layer,
             w.modelPanel()->table()->model()->index(3, 0).data().toString());
  }

  void missingModelStillOpensAndShowsProblems() {
    test::TestProjectOptions o;
    o.write_model = false;
    const QString path = QString::fromStdString(
        test::make_test_project((dir_.path() + "/nomodel").toStdString(), "nomodel", o));
    studio::MainWindow w;
    QVERIFY(w.context().openProject(path));
    QLabel* problems = w.projectPanel()->problemsLabel();
    QVERIFY(!problems->isHidden());
    QVERIFY(problems->text().startsWith(QStringLiteral("model: ")));
    QVERIFY(problems->text().contains(QStringLiteral("no such file")));
    auto* error = w.modelPanel()->findChild<QLabel*>(QStringLiteral("modelError"));
    QTRY_VERIFY_WITH_TIMEOUT(!error->isHidden(), 10000);
    QVERIFY(error->text().contains(QStringLiteral("tiny.bin")));
    QCOMPARE(w.modelPanel()->visibleRowCount(), 0);
  }

  void brokenProjectIsRefusedWithOneLogLine() {
    const QString path = dir_.path() + "/broken.mcwproj";
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(R"({"format_version": 9, "name": "x", "model": ""})");
    f.close();
    studio::MainWindow w;
    QVERIFY(!w.context().openProject(path));
    QVERIFY(!w.context().hasProject());
    QVERIFY(test::log_contains(w.context(), "written by a newer MCW (format 9)"));
  }

  void startPageListsRecentAndDemoProjectsAndOpensThem() {
    {
      studio::MainWindow w;
      QVERIFY(w.context().openProject(project_));
    }
    studio::MainWindow w;
    w.context().setDemoDirectories({dir_.path()});
    w.startPage()->refresh();
    QListWidget* recent = w.startPage()->recentList();
    QCOMPARE(recent->count(), 1);
    QCOMPARE(recent->item(0)->data(Qt::UserRole).toString(), QFileInfo(project_).absoluteFilePath());
    QListWidget* demos = w.startPage()->demoList();
    QVERIFY(demos->count() >= 1);
    QVERIFY(!w.context().hasProject());
    emit recent->itemActivated(recent->item(0));
    QVERIFY(w.context().hasProject());
    QCOMPARE(w.context().project().name, QStringLiteral("tiny"));
  }

  void droppingAModelFileOpensIt() {
    studio::MainWindow w;
    const QString model = dir_.path() + "/models/tiny.bin";
    QMimeData mime;
    mime.setUrls({QUrl::fromLocalFile(model)});
    QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&w, &enter);
    QVERIFY(enter.isAccepted());
    QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&w, &drop);
    QTRY_COMPARE_WITH_TIMEOUT(w.modelPanel()->visibleRowCount(), 21, 10000);  // 1 + 2*9 + 2
    QCOMPARE(w.context().model().format, QStringLiteral("llama2.c"));
  }

  void saveAsWritesAProjectThatLoadsBack() {
    studio::MainWindow w;
    QVERIFY(w.context().openProject(project_));
    const QString copy = dir_.path() + "/copy.mcwproj";
    QVERIFY(w.context().saveProjectAs(copy));
    QCOMPARE(w.context().projectFile(), copy);
    QVERIFY(!w.context().isDirty());
    studio::MainWindow w2;
    QVERIFY(w2.context().openProject(copy));
    QCOMPARE(w2.context().project().model_path, w.context().project().model_path);
  }

  // Run ▸ Exact Activations switches the engine's int8 activations off, and is kept.
  void exactActivationsAreAToggleKeptInTheSettings() {
    {
      studio::MainWindow w;
      QVERIFY(!w.exactActivationsAction()->isChecked());
      QVERIFY(int8_activations());
      w.exactActivationsAction()->setChecked(true);
      QVERIFY(!int8_activations());
    }
    studio::MainWindow w;
    QVERIFY(w.exactActivationsAction()->isChecked());
    QVERIFY(!int8_activations());
    w.exactActivationsAction()->setChecked(false);
    QVERIFY(int8_activations());
  }

  void layoutAndThemeAreRestoredFromSettings() {
    {
      studio::MainWindow w;
      w.show();
      QVERIFY(QTest::qWaitForWindowExposed(&w));
      QVERIFY(!w.jobsDock()->isHidden());
      w.jobsDock()->hide();
      w.setTheme(studio::Theme::Dark);
      w.saveLayout();
    }
    studio::MainWindow w;
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QVERIFY(w.jobsDock()->isHidden());
    QVERIFY(!w.projectDock()->isHidden());
    QCOMPARE(w.theme(), studio::Theme::Dark);
    QVERIFY(QApplication::palette().color(QPalette::Window).lightness() < 100);
    QSettings().clear();
    studio::MainWindow fresh;
    QVERIFY(!fresh.restoreLayout());
    QCOMPARE(fresh.theme(), studio::Theme::Light);
  }

 private:
  QTemporaryDir dir_;
  QString project_;
};

QTEST_MAIN(StudioWindowTest)
#include "test_studio_window.moc"
