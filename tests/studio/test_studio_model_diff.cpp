// Model diff in the studio: the project's model against a copy written here with known
// changes (one tensor halved, one zeroed, one dropped, one added), run as a job through
// the context; the rows' numbers against those changes, the view's summary, filter,
// sorting and tints; a corrupt second file; and a cancelled comparison of a large model.
#include <QCheckBox>
#include <QDockWidget>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QTableView>
#include <QtTest>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/io/model_file.h"
#include "engine/io/safetensors.h"
#include "studio_test_util.h"
#include "widgets/model_diff_table_model.h"
#include "widgets/model_diff_view.h"

using namespace mcw;

namespace {

// Index of the row named `name`, or -1.
int row_of(const ui::ModelDiffResult& d, const QString& name) {
  for (int i = 0; i < d.rows.size(); ++i)
    if (d.rows[i].name == name) return i;
  return -1;
}

// A safetensors file of F16 zeros, `tensors` tensors of `n` values each, written as a
// sparse file: gigabytes of model for the cancel test without gigabytes of disk.
void write_sparse_f16_model(const std::string& path, int tensors, uint64_t n) {
  std::ostringstream json;
  json << '{';
  for (int i = 0; i < tensors; ++i)
    json << (i ? "," : "") << "\"t" << i << "\":{\"dtype\":\"F16\",\"shape\":[" << n
         << "],\"data_offsets\":[" << 2 * n * uint64_t(i) << ',' << 2 * n * uint64_t(i + 1) << "]}";
  json << '}';
  std::string header = json.str();
  while (header.size() % 8) header += ' ';
  std::string prefix(8, '\0');
  for (int b = 0; b < 8; ++b) prefix[size_t(b)] = char((uint64_t(header.size()) >> (8 * b)) & 0xff);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << prefix << header;
  }
  std::filesystem::resize_file(path, 8 + header.size() + 2 * n * uint64_t(tensors));
}

}  // namespace

class StudioModelDiffTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() {
    test::use_test_settings();
    QVERIFY(dir_.isValid());
  }

  void compareWithAModifiedCopy() {
    const std::string dir = (dir_.path() + "/diff").toStdString();
    const QString project = QString::fromStdString(test::make_test_project(dir, "diff"));
    studio::MainWindow w;
    QVERIFY(w.context().openProject(project));
    QTRY_VERIFY_WITH_TIMEOUT(test::all_stats_ready(w.context().model()), 20000);

    // The copy: tensor 1 halved (exact in binary), tensor 2 zeroed, the last one dropped,
    // a new one added.
    const ModelFile a = open_model_file(w.context().model().path.toStdString());
    QVERIFY(a.tensors.size() >= 5);
    std::vector<Tensor> copy;
    const size_t halved = 1, zeroed = 2, dropped = a.tensors.size() - 1;
    double max_abs_a = 0, nonzero_share = 0;
    for (size_t i = 0; i < a.tensors.size(); ++i) {
      if (i == dropped) continue;
      std::vector<float> v = a.tensors[i].to_f32();
      if (i == halved) {
        for (float& x : v) max_abs_a = std::max(max_abs_a, std::abs(double(x))), x *= 0.5f;
      }
      if (i == zeroed) {
        for (float& x : v) nonzero_share += x != 0, x = 0;
        nonzero_share /= double(v.size());
      }
      copy.push_back(Tensor::from_f32(v, a.tensors[i].shape(), a.tensors[i].name()));
    }
    copy.push_back(Tensor::from_f32(std::vector<float>(6, 1.0f), {2, 3}, "extra.weight"));
    const std::string b_path = dir + "/changed.safetensors";
    write_safetensors(b_path, copy);

    ui::ModelDiffView* view = w.modelDiffView();
    QVERIFY(view->compareButton()->isEnabled());
    const int job = w.context().startModelDiff(QString::fromStdString(b_path));
    QVERIFY(job > 0);
    QCOMPARE(int(w.context().modelDiff().state), int(ui::ModelDiffState::Running));
    QTRY_COMPARE_WITH_TIMEOUT(int(w.context().modelDiff().state), int(ui::ModelDiffState::Done),
                              20000);
    QTRY_COMPARE(int(test::find_job(w.context(), "Model diff").state),
                 int(ui::JobState::Succeeded));

    const ui::ModelDiffResult& d = w.context().modelDiff();
    QCOMPARE(d.rows.size(), qsizetype(a.tensors.size() + 1));
    const auto name = [&](size_t i) { return QString::fromStdString(a.tensors[i].name()); };
    const ui::TensorDiffRow& h = d.rows[row_of(d, name(halved))];
    QVERIFY2(std::abs(h.rel_l2 - 0.5) < 1e-12, qPrintable(QString::number(h.rel_l2)));
    QVERIFY(std::abs(h.cosine - 1.0) < 1e-12);
    QCOMPARE(h.max_abs, 0.5 * max_abs_a);
    QVERIFY(h.differs);
    const ui::TensorDiffRow& z = d.rows[row_of(d, name(zeroed))];
    QVERIFY(std::abs(z.rel_l2 - 1.0) < 1e-12);
    QCOMPARE(z.cosine, 0.0);
    QCOMPARE(z.sparsity_b, 1.0);
    QCOMPARE(z.changed_fraction, nonzero_share);
    QCOMPARE(int(d.rows[row_of(d, name(dropped))].status), int(ui::TensorDiffStatus::OnlyInA));
    QCOMPARE(d.rows.last().name, QStringLiteral("extra.weight"));
    QCOMPARE(int(d.rows.last().status), int(ui::TensorDiffStatus::OnlyInB));
    for (size_t i = 0; i < a.tensors.size(); ++i) {
      if (i == halved || i == zeroed || i == dropped) continue;
      const ui::TensorDiffRow& r = d.rows[int(i)];
      QCOMPARE(r.name, name(i));  // model order
      QCOMPARE(r.rel_l2, 0.0);
      QCOMPARE(r.cosine, 1.0);
      QVERIFY(!r.differs);
    }
    QCOMPARE(d.summary.differing, 4);
    QCOMPARE(d.summary.value_changed, 2);
    QCOMPARE(d.summary.only_in_a, 1);
    QCOMPARE(d.summary.only_in_b, 1);

    // The view: all rows, the summary line, tints only on rows that differ.
    QCOMPARE(view->visibleRowCount(), int(d.rows.size()));
    QVERIFY2(view->summaryLabel()->text().contains(
                 QStringLiteral("4 of %1 tensors differ").arg(d.rows.size())),
             qPrintable(view->summaryLabel()->text()));
    QVERIFY(view->summaryLabel()->text().contains(QStringLiteral("1 only in A")));
    QAbstractItemModel* shown = view->table()->model();
    for (int r = 0; r < shown->rowCount(); ++r) {
      const bool tinted = shown->data(shown->index(r, 0), Qt::BackgroundRole).isValid();
      QCOMPARE(tinted, d.rows[r].differs);
    }
    // Sorted by relative L2, most different first: the two structural rows, then the
    // zeroed tensor (1), then the halved one (0.5).
    view->table()->sortByColumn(ui::ModelDiffTableModel::RelL2, Qt::DescendingOrder);
    const auto name_at = [&](int r) {
      return shown->data(shown->index(r, ui::ModelDiffTableModel::Name)).toString();
    };
    QSet<QString> first_two{name_at(0), name_at(1)};
    QCOMPARE(first_two, (QSet<QString>{name(dropped), QStringLiteral("extra.weight")}));
    QCOMPARE(name_at(2), name(zeroed));
    QCOMPARE(name_at(3), name(halved));
    QCOMPARE(shown->data(shown->index(3, ui::ModelDiffTableModel::RelL2)).toString(),
             QStringLiteral("0.5"));
    // Filters: only differences, then by name.
    view->onlyDifferences()->setChecked(true);
    QCOMPARE(view->visibleRowCount(), 4);
    view->filterBox()->setText(QStringLiteral("EXTRA"));
    QCOMPARE(view->visibleRowCount(), 1);
    view->filterBox()->clear();
    view->onlyDifferences()->setChecked(false);
    // Picking a row selects that tensor for every panel.
    view->table()->selectRow(2);
    QCOMPARE(w.context().selection().layer, name(zeroed));

    // Another model: the diff is cleared.
    w.context().openModel(QString::fromStdString(b_path));
    QCOMPARE(int(w.context().modelDiff().state), int(ui::ModelDiffState::None));
    QCOMPARE(view->visibleRowCount(), 0);
  }

  void corruptSecondModelFailsWithOneLine() {
    const std::string dir = (dir_.path() + "/corrupt").toStdString();
    const QString project = QString::fromStdString(test::make_test_project(dir, "corrupt"));
    studio::MainWindow w;
    QVERIFY(w.context().openProject(project));
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().model().loading, 20000);
    const std::string bad = dir + "/bad.safetensors";
    std::ofstream(bad, std::ios::binary) << std::string("\x40\0\0\0\0\0\0\0{\"x\":", 13);
    QVERIFY(w.context().startModelDiff(QString::fromStdString(bad)) > 0);
    QTRY_COMPARE_WITH_TIMEOUT(int(w.context().modelDiff().state), int(ui::ModelDiffState::Failed),
                              20000);
    const QString error = w.context().modelDiff().error;
    QVERIFY2(error.contains(QStringLiteral("bad.safetensors")) && !error.contains('\n'),
             qPrintable(error));
    QTRY_COMPARE(int(test::find_job(w.context(), "Model diff").state), int(ui::JobState::Failed));
    QVERIFY(w.modelDiffView()->findChild<QLabel*>(QStringLiteral("diffError"))->text() == error);
    QVERIFY(test::log_contains(w.context(), QStringLiteral("bad.safetensors")));
  }

  void aLargeComparisonCanBeCancelled() {
    // 16 x 2^25 F16 values (a sparse file): far more work than the moment it takes to cancel.
    const std::string path = (dir_.path() + "/large.safetensors").toStdString();
    write_sparse_f16_model(path, 16, uint64_t(1) << 25);
    studio::MainWindow w;
    w.context().openModel(QString::fromStdString(path));
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().model().loading, 20000);
    QVERIFY(w.context().model().error.isEmpty());
    const int stats = test::find_job(w.context(), "Tensor statistics").id;
    w.context().cancelJob(stats);  // not what this test measures
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().bridge().isRunning(stats), 20000);

    const int job = w.context().startModelDiff(QString::fromStdString(path));
    QVERIFY(job > 0);
    // Under way: the job reports its comparison stage.
    QTRY_VERIFY_WITH_TIMEOUT(test::find_job(w.context(), "Model diff").stage == "diff", 20000);
    QVERIFY(w.modelDiffView()->cancelButton()->isVisibleTo(w.modelDiffView()));
    QTest::mouseClick(w.modelDiffView()->cancelButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(int(test::find_job(w.context(), "Model diff").state),
                              int(ui::JobState::Cancelled), 20000);
    QCOMPARE(int(w.context().modelDiff().state), int(ui::ModelDiffState::Cancelled));
    QVERIFY(w.context().modelDiff().rows.isEmpty());
    QVERIFY(!w.modelDiffView()->cancelButton()->isVisibleTo(w.modelDiffView()));
    QVERIFY(w.modelDiffView()->summaryLabel()->text().contains(QStringLiteral("cancelled")));
  }

 private:
  QTemporaryDir dir_;
};

QTEST_MAIN(StudioModelDiffTest)
#include "test_studio_model_diff.moc"
