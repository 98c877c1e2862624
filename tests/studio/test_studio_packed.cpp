// A compressed model directory with packed.safetensors beside the weights: the Model
// panel's Scheme, Bits/w and Sparsity columns, and the selected layer's packed form and
// per-(row, group) parameters, checked against the engine's CompressedTensors.
#include <QLabel>
#include <QLineEdit>
#include <QTableView>
#include <QTreeView>
#include <QtTest>
#include <cmath>
#include <filesystem>

#include "engine/compress/compress_llama.h"
#include "engine/export/packed_safetensors.h"
#include "engine/model/llama_save.h"
#include "app/studio/model_data.h"
#include "engine/recipe/recipe.h"
#include "studio_test_util.h"
#include "tests/engine/llama_test_util.h"
#include "tests/engine/quantized_checkpoint_writer.h"
#include "widgets/layer_tree_model.h"
#include "widgets/model_panel.h"
#include "widgets/packed_layer_view.h"
#include "widgets/packed_params_model.h"
#include "widgets/tensor_table_model.h"

using namespace mcw;
using mcw::ui::PackedParamsModel;
using mcw::ui::LayerTreeModel;
using mcw::ui::TensorTableModel;

namespace {

// RTN 4-bit g32 (asymmetric: zero points stored) on attention, 50 % magnitude on the MLP.
constexpr const char* kRecipe =
    "stages:\n"
    "  - algorithm: rtn\n    bits: 4\n    group_size: 32\n    targets: ['*self_attn*']\n"
    "  - algorithm: magnitude\n    sparsity: 0.5\n    targets: ['*mlp*']\n";

}  // namespace

class StudioPackedTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() {
    test::use_test_settings();
    QVERIFY(dir_.isValid());
    LlamaConfig c = test::tiny_config(8, 4);  // dim 64 (two groups of 32), hidden 40
    c.vocab_size = 258;
    const LlamaModel base = test::random_llama(c, 3);
    result_ = compress_llama(base, parse_recipe(kRecipe, "packed-test"), {}, {});
    model_dir_ = dir_.path() + QStringLiteral("/compressed");
    const std::string dir = model_dir_.toStdString();
    TokenizerFiles tok;
    tok.byte_vocab = true;
    save_llama_hf(result_.model, dir, tok);
    std::vector<const CompressedTensor*> layers;
    for (const CompressedLayer& l : result_.layers) layers.push_back(&l.tensor);
    write_packed_safetensors((std::filesystem::path(dir) / kPackedFileName).string(), layers);
  }
  void init() {
    QSettings().clear();
    studio::set_eager_parameter_values(int64_t(1) << 22);
  }

  void columnsShowSchemeBitsAndSparsity() {
    studio::MainWindow w;
    w.context().openModel(model_dir_);
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().model().loading && !w.context().model().tensors.isEmpty(),
                             10000);
    QCOMPARE(w.context().model().packed_error, QString());
    QCOMPARE(w.context().model().packed.size(), qsizetype(result_.layers.size()));
    QTableView* table = w.modelPanel()->table();
    QAbstractItemModel* m = table->model();
    QVERIFY(!table->isColumnHidden(TensorTableModel::Scheme));
    int compressed = 0;
    for (int r = 0; r < m->rowCount(); ++r) {
      const std::string name = m->index(r, TensorTableModel::Name).data().toString().toStdString();
      const CompressedTensor* t = find(name);
      const QString scheme = m->index(r, TensorTableModel::Scheme).data().toString();
      if (!t) {  // embeddings, norms, the output projection: not compressed
        QVERIFY2(scheme.isEmpty(), name.c_str());
        QVERIFY(m->index(r, TensorTableModel::BitsPerWeight).data().toString().isEmpty());
        continue;
      }
      ++compressed;
      QCOMPARE(scheme, QString::fromStdString(t->describe()));
      const double bits =
          m->index(r, TensorTableModel::BitsPerWeight).data(Qt::UserRole).toDouble();
      const double sparsity = m->index(r, TensorTableModel::Sparsity).data(Qt::UserRole).toDouble();
      if (name.find("self_attn") != std::string::npos) {
        // 4-bit codes + f16 scale + 4-bit zero per 32 weights, no mask.
        QCOMPARE(scheme.left(13), QStringLiteral("int4 g32 asym"));
        QCOMPARE(bits, 4.0 + 20.0 / 32.0);
        QCOMPARE(sparsity, 0.0);
      } else {
        // f16 for the kept half and a 1-bit mask for every weight.
        QCOMPARE(scheme, QStringLiteral("f16, 50% sparse"));
        QCOMPARE(bits, 9.0);
        QCOMPARE(sparsity, 0.5);
        QCOMPARE(m->index(r, TensorTableModel::Sparsity).data().toString(),
                 QStringLiteral("50.0 %"));
      }
    }
    QCOMPARE(compressed, int(result_.layers.size()));
  }

  // A GPTQ checkpoint (parts, no packed.safetensors): its layers list their scheme, and the
  // selected one says what it is without a table of parameters.
  void checkpointLayersShowTheirScheme() {
    const std::string dir = (dir_.path() + QStringLiteral("/gptq")).toStdString();
    TokenizerFiles tok;
    tok.byte_vocab = true;
    test::write_checkpoint(dir, test::Layout::GptqV1, 4, 32, true, true, tok);
    studio::MainWindow w;
    w.context().openModel(QString::fromStdString(dir));
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().model().loading && !w.context().model().packed.isEmpty(),
                             10000);
    QCOMPARE(w.context().model().packed.size(), qsizetype(14));  // 7 linears × 2 blocks
    QAbstractItemModel* m = w.modelPanel()->table()->model();
    int listed = 0;
    for (int r = 0; r < m->rowCount(); ++r) {
      const QString name = m->index(r, TensorTableModel::Name).data().toString();
      const QString scheme = m->index(r, TensorTableModel::Scheme).data().toString();
      QCOMPARE(scheme.isEmpty(), !name.contains(QStringLiteral("_proj")));
      if (scheme.isEmpty()) continue;
      QCOMPARE(scheme, QStringLiteral("GPTQ int4 g32 asym, act-order"));
      ++listed;
    }
    QCOMPARE(listed, 14);
    ui::Selection s = w.context().selection();
    s.layer = QStringLiteral("model.layers.0.mlp.down_proj.weight");
    w.context().setSelection(s);
    const QString summary = w.modelPanel()->packedView()->summary()->text();
    QVERIFY2(summary.contains(QStringLiteral("4-bit gptq checkpoint, 4 group(s) of 32 per row, "
                                             "act-order (g_idx), asymmetric")),
             qPrintable(summary));
  }

  void selectedLayerShowsItsParametersFromTheFile() {
    studio::MainWindow w;
    w.context().openModel(model_dir_ + QStringLiteral("/model.safetensors"));  // a file inside
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().model().packed.isEmpty(), 10000);
    ui::PackedLayerView* view = w.modelPanel()->packedView();
    QVERIFY(!view->isHidden());

    const CompressedTensor& q = *find("model.layers.1.self_attn.o_proj.weight");
    ui::Selection s = w.context().selection();
    s.layer = QString::fromStdString(q.name);
    w.context().setSelection(s);
    QCOMPARE(w.modelPanel()->table()->currentIndex().data().toString(), s.layer);
    const QString summary = view->summary()->text();
    QVERIFY2(summary.contains(QStringLiteral("64 × 64")), qPrintable(summary));
    QVERIFY2(summary.contains(QStringLiteral("4-bit affine, 2 group(s) of 32 per row")),
             qPrintable(summary));
    QVERIFY2(summary.contains(QStringLiteral("asymmetric")), qPrintable(summary));
    QVERIFY2(summary.contains(QStringLiteral("stored (%1 bytes)").arg((q.storage_bits() + 7) / 8)),
             qPrintable(summary));
    QVERIFY(!view->table()->isHidden());
    PackedParamsModel* p = view->params();
    QCOMPARE(p->rowCount(), int(q.rows * q.groups()));
    QCOMPARE(p->columnCount(), 4);
    QCOMPARE(p->index(0, PackedParamsModel::Scale).data(Qt::UserRole).toDouble(),
             double(q.scales[0]));
    QCOMPARE(p->index(0, PackedParamsModel::Zero).data(Qt::UserRole).toDouble(),
             double(q.zeros[0]));
    const int last = p->rowCount() - 1;
    QCOMPARE(p->index(last, PackedParamsModel::Row).data().toLongLong(), q.rows - 1);
    QCOMPARE(p->index(last, PackedParamsModel::Scale).data(Qt::UserRole).toDouble(),
             double(q.scales.back()));
    QCOMPARE(p->index(last, PackedParamsModel::Zero).data(Qt::UserRole).toDouble(),
             double(q.zeros.back()));

    // A pruned layer: its kept share, no per-group table.
    s.layer = QStringLiteral("model.layers.0.mlp.down_proj.weight");
    w.context().setSelection(s);
    QVERIFY(view->summary()->text().contains(QStringLiteral("kept 50.0 %")));
    QVERIFY(view->table()->isHidden());
    QCOMPARE(p->rowCount(), 0);

    // An uncompressed tensor.
    s.layer = QStringLiteral("model.norm.weight");
    w.context().setSelection(s);
    QVERIFY(view->summary()->text().contains(QStringLiteral("not compressed")));
  }

  // A large export's per-group parameters stay in the file until the layer is shown: the
  // panel says it is reading them, then shows the same values as an eager read.
  void deferredParametersAreReadWhenTheLayerIsShown() {
    studio::set_eager_parameter_values(0);
    studio::MainWindow w;
    w.context().openModel(model_dir_);
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().model().packed.isEmpty(), 10000);
    for (const ui::PackedLayerRow& r : w.context().model().packed) {
      QVERIFY(!r.parameters_loaded);
      QVERIFY(r.scales.isEmpty());
    }
    ui::PackedLayerView* view = w.modelPanel()->packedView();
    const CompressedTensor& q = *find("model.layers.1.self_attn.o_proj.weight");
    ui::Selection s = w.context().selection();
    s.layer = QString::fromStdString(q.name);
    w.context().setSelection(s);
    QVERIFY2(view->summary()->text().contains(QStringLiteral("reading its scales")),
             qPrintable(view->summary()->text()));
    QTRY_VERIFY_WITH_TIMEOUT(!view->table()->isHidden(), 10000);
    QVERIFY(!view->summary()->text().contains(QStringLiteral("reading its scales")));
    PackedParamsModel* p = view->params();
    QCOMPARE(p->rowCount(), int(q.rows * q.groups()));
    const int last = p->rowCount() - 1;
    QCOMPARE(p->index(last, PackedParamsModel::Scale).data(Qt::UserRole).toDouble(),
             double(q.scales.back()));
    QCOMPARE(p->index(last, PackedParamsModel::Zero).data(Qt::UserRole).toDouble(),
             double(q.zeros.back()));
    int loaded = 0;  // only the layer shown was read
    for (const ui::PackedLayerRow& r : w.context().model().packed) loaded += r.parameters_loaded;
    QCOMPARE(loaded, 1);
  }

  // The layer tree groups tensors by name; each group's parameters and bits per weight are
  // the totals of the engine's tensors below it.
  void layerTreeGroupsTensorsWithTotals() {
    studio::MainWindow w;
    w.context().openModel(model_dir_);
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().model().packed.isEmpty(), 10000);
    ui::ModelPanel* panel = w.modelPanel();
    QVERIFY(panel->treeShown());
    QAbstractItemModel* m = panel->tree()->model();
    const QModelIndex model = child(m, {}, "model");
    QVERIFY(model.isValid());
    quint64 under_model = 0;  // lm_head.weight is a top-level node of its own
    for (const auto& [name, t] : result_.model.named_tensors())
      if (name.rfind("model.", 0) == 0) under_model += quint64(t->numel());
    QVERIFY(child(m, {}, "lm_head.weight").isValid());
    QCOMPARE(m->index(model.row(), LayerTreeModel::Params, {}).data(Qt::UserRole).toULongLong(),
             under_model);
    const QModelIndex layers = child(m, model, "layers");
    QCOMPARE(m->rowCount(layers), int(result_.model.cfg.n_layers));
    for (const char* block : {"0", "1"}) {
      const QModelIndex b = child(m, layers, block);
      QVERIFY(b.isValid());
      const std::string prefix = std::string("model.layers.") + block + ".";
      quint64 params = 0, weights = 0;
      double bits = 0;
      for (const auto& [name, t] : result_.model.named_tensors())
        if (name.rfind(prefix, 0) == 0) params += quint64(t->numel());
      for (const CompressedLayer& l : result_.layers)
        if (l.tensor.name.rfind(prefix, 0) == 0) {
          weights += quint64(l.tensor.rows * l.tensor.cols);
          bits += double(l.tensor.storage_bits());
        }
      QCOMPARE(b.siblingAtColumn(LayerTreeModel::Params).data(Qt::UserRole).toULongLong(), params);
      QVERIFY(std::fabs(b.siblingAtColumn(LayerTreeModel::BitsPerWeight).data(Qt::UserRole).toDouble() -
                        bits / double(weights)) < 1e-9);
      QCOMPARE(child(m, b, "mlp").siblingAtColumn(LayerTreeModel::Sparsity).data(Qt::UserRole).toDouble(),
               0.5);
    }
    // Selection both ways: a leaf sets the context's layer, the context's layer opens the tree.
    const QModelIndex q = child(m, child(m, child(m, layers, "1"), "self_attn"), "q_proj.weight");
    QCOMPARE(q.data(LayerTreeModel::kPathRole).toString(),
             QStringLiteral("model.layers.1.self_attn.q_proj.weight"));
    panel->tree()->setCurrentIndex(q);
    QCOMPARE(w.context().selection().layer, QStringLiteral("model.layers.1.self_attn.q_proj.weight"));
    ui::Selection sel = w.context().selection();
    sel.layer = QStringLiteral("model.layers.0.mlp.down_proj.weight");
    w.context().setSelection(sel);
    QCOMPARE(panel->tree()->currentIndex().siblingAtColumn(0).data(LayerTreeModel::kPathRole).toString(),
             sel.layer);
    // A filter on the path keeps the matching block and what it holds, nothing else.
    panel->filterBox()->setText(QStringLiteral("layers.1.mlp"));
    const QModelIndex only = child(m, child(m, child(m, {}, "model"), "layers"), "1");
    QCOMPARE(m->rowCount(child(m, {}, "model")), 1);
    QCOMPARE(m->rowCount(only), 1);
    QCOMPARE(m->rowCount(child(m, only, "mlp")), 3);
    panel->setTreeShown(false);
    QVERIFY(!panel->treeShown());
  }

  // An AWQ layer's input scale reaches the details summary (range from the engine tensor).
  void inputScaleIsSummarised() {
    CompressedTensor t = result_.layers[0].tensor;
    t.input_scale.assign(size_t(t.cols), 1.0f);
    t.input_scale[3] = 0.5f, t.input_scale[7] = 2.25f;
    const ui::PackedLayerRow row = studio::to_packed_row(t);
    QCOMPARE(row.input_scales, qint64(t.cols));
    QCOMPARE(row.input_scale_min, 0.5f);
    QCOMPARE(row.input_scale_max, 2.25f);
    const QString text = ui::packed_layer_summary(row);
    QVERIFY2(text.contains(QStringLiteral("values in [0.5, 2.25]")), qPrintable(text));
    QVERIFY(!ui::packed_layer_summary(studio::to_packed_row(result_.layers[0].tensor))
                 .contains(QStringLiteral("input divided")));
  }

  void badPackedFileStillOpensTheModel() {
    QTemporaryDir other;
    const std::filesystem::path from(model_dir_.toStdString()), to(other.path().toStdString());
    for (const char* f : {"config.json", "model.safetensors"})
      std::filesystem::copy_file(from / f, to / f);
    std::filesystem::copy_file(from / kPackedFileName, to / kPackedFileName);
    std::filesystem::resize_file(to / kPackedFileName, 40);  // truncated
    studio::MainWindow w;
    w.context().openModel(other.path());
    QTRY_VERIFY_WITH_TIMEOUT(!w.context().model().loading && !w.context().model().tensors.isEmpty(),
                             10000);
    QVERIFY(w.context().model().packed.isEmpty());
    auto* error = w.modelPanel()->findChild<QLabel*>(QStringLiteral("modelError"));
    QVERIFY(!error->isHidden());
    QVERIFY2(error->text().contains(QString::fromLatin1(kPackedFileName)),
             qPrintable(error->text()));
    QVERIFY(w.modelPanel()->table()->isColumnHidden(TensorTableModel::Scheme));
    QVERIFY(w.modelPanel()->packedView()->isHidden());
  }

 private:
  static QModelIndex child(QAbstractItemModel* m, const QModelIndex& parent, const char* label) {
    for (int r = 0; r < m->rowCount(parent); ++r)
      if (m->index(r, 0, parent).data().toString() == QLatin1String(label)) return m->index(r, 0, parent);
    return {};
  }
  const CompressedTensor* find(const std::string& name) const {
    for (const CompressedLayer& l : result_.layers)
      if (l.tensor.name == name) return &l.tensor;
    return nullptr;
  }

  QTemporaryDir dir_;
  QString model_dir_;
  CompressionResult result_;
};

QTEST_MAIN(StudioPackedTest)
#include "test_studio_packed.moc"
