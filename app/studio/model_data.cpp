#include "app/studio/model_data.h"

#include <algorithm>
#include <atomic>

#include <QHash>

#include "engine/core/error.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/quantized_checkpoint.h"

namespace mcw::studio {

static bool is_embedding_table(const std::string& name) {
  return name == "token_embd.weight" || name == "model.embed_tokens.weight" ||
         name == "transformer.wte.weight" || name == "tok_embeddings.weight";
}

static bool has_output_projection(const ModelFile& m) {
  return m.find("output.weight") || m.find("lm_head.weight");
}

quint64 macs_per_token(const ModelFile& model, const Tensor& t) {
  if (t.ndim() != 2) return 0;
  if (is_embedding_table(t.name()) && has_output_projection(model)) return 0;
  return quint64(t.dim(0)) * quint64(t.dim(1));
}

ui::TensorStatsRow to_stats_row(const TensorStats& s) {
  ui::TensorStatsRow r;
  r.ready = true;
  r.min = s.min;
  r.max = s.max;
  r.mean = s.mean;
  r.std = s.std;
  r.zeros = s.zeros;
  r.nonfinite = s.nonfinite;
  return r;
}

static QList<float> to_qlist(const std::vector<float>& v) {
  return QList<float>(v.begin(), v.end());
}

ui::PackedLayerRow to_packed_row(const CompressedTensor& t) {
  ui::PackedLayerRow r;
  r.name = QString::fromStdString(t.name);
  const std::string_view coding = coding_name(t.coding);
  r.coding = QString::fromLatin1(coding.data(), qsizetype(coding.size()));
  r.scheme = QString::fromStdString(t.describe());
  r.rows = t.rows, r.cols = t.cols;
  r.bits = t.bits;
  r.group_size = t.group_size;
  r.groups = t.groups();
  r.symmetric = t.symmetric;
  r.act_order = !t.g_idx.empty();
  r.nm_n = t.nm_n, r.nm_m = t.nm_m;
  r.rank = t.rank;
  r.bits_per_weight = t.bits_per_weight();
  r.storage_bytes = (t.storage_bits() + 7) / 8;
  r.kept_fraction = double(t.kept_count()) / double(t.rows * t.cols);
  r.outliers = t.outlier_index.size();
  if (!t.input_scale.empty()) {
    const auto [lo, hi] = std::minmax_element(t.input_scale.begin(), t.input_scale.end());
    r.input_scales = qint64(t.input_scale.size());
    r.input_scale_min = *lo, r.input_scale_max = *hi;
  }
  r.scales = to_qlist(t.scales);
  r.zeros = to_qlist(t.zeros);
  r.codebook = to_qlist(t.codebook);
  return r;
}

// 4 M values: 32 MB as the rows' lists, all of a 1 B model at 4 bits g128 (8 B: ~55 M).
static std::atomic<int64_t> g_eager_parameter_values{int64_t(1) << 22};

// Joins the packed layers to the model's tensors by name; a bad file is reported, not fatal.
static void attach_packed(const std::string& model_path, ui::ModelSummary& s) {
  const std::string packed = find_packed_beside(model_path);
  if (packed.empty()) return;
  s.packed_path = QString::fromStdString(packed);
  try {
    // One layer at a time: an 8 B model's codes are gigabytes; the rows keep its scales.
    const PackedSafetensorsReader layers(packed);
    QHash<QString, int> row_of;
    for (int i = 0; i < s.tensors.size(); ++i) row_of.insert(s.tensors[i].name, i);
    s.packed.reserve(qsizetype(layers.size()));
    int64_t kept = 0;
    for (size_t i = 0; i < layers.size(); ++i) {
      s.packed.push_back(to_packed_row(layers.read(i)));
      ui::PackedLayerRow& added = s.packed.back();
      kept += added.scales.size() + added.zeros.size() + added.codebook.size();
      if (kept > g_eager_parameter_values.load(std::memory_order_relaxed)) {
        added.scales = {}, added.zeros = {}, added.codebook = {};
        added.parameters_loaded = false;
      }
      const ui::PackedLayerRow& p = s.packed.back();
      auto it = row_of.find(p.name);
      if (it == row_of.end()) continue;
      ui::TensorRow& row = s.tensors[*it];
      if (row.shape != QList<qint64>{p.rows, p.cols}) {
        // Another model's export: showing its schemes here would mislead.
        s.packed_error = QStringLiteral("%1: layer '%2' is %3 x %4 there, but not in the model")
                             .arg(s.packed_path, p.name).arg(p.rows).arg(p.cols);
        continue;
      }
      row.packed = int(s.packed.size() - 1);
    }
  } catch (const Error& e) {
    s.packed.clear();
    for (ui::TensorRow& r : s.tensors) r.packed = -1;
    s.packed_error = QString::fromStdString(e.what());
  }
}

// A quantised checkpoint's layers (GPTQ, AWQ, compressed-tensors) and GGUF tensors of types
// MCW does not decode, listed like a packed export's layers with their scheme (per-group
// parameters stay in the file: the table of them is not filled).
static void attach_checkpoint_layers(const ModelFile& file, ui::ModelSummary& s) {
  for (int i = 0; i < s.tensors.size(); ++i) {
    const Tensor& t = file.tensors[size_t(i)];
    if (!t.decoder()) continue;
    ui::PackedLayerRow r;
    r.name = QString::fromStdString(t.name());
    r.coding = QStringLiteral("checkpoint");
    r.scheme = QString::fromStdString(t.decoder()->describe());
    r.rows = t.dim(0), r.cols = t.dim(1);
    if (const auto q = checkpoint_layer_scheme(t)) {  // GPTQ, AWQ: the scheme in fields
      r.coding = q->method == QuantizedCheckpointConfig::Method::Awq
                     ? QStringLiteral("awq checkpoint")
                     : QStringLiteral("gptq checkpoint");
      r.bits = q->bits;
      r.group_size = q->group_size;
      r.groups = (r.cols + r.group_size - 1) / r.group_size;
      r.symmetric = q->symmetric;
      r.act_order = q->act_order;
    }
    r.storage_bytes = t.nbytes();
    r.bits_per_weight = 8.0 * double(t.nbytes()) / double(t.numel());
    s.packed.push_back(std::move(r));
    s.tensors[i].packed = int(s.packed.size() - 1);
  }
  if (!s.packed.isEmpty() && s.packed_path.isEmpty()) s.packed_path = s.path;
}

void set_eager_parameter_values(int64_t values) {
  g_eager_parameter_values.store(values, std::memory_order_relaxed);
}

ui::PackedLayerRow read_packed_row(const std::string& packed_path, const std::string& name) {
  const PackedSafetensorsReader reader(packed_path);
  for (size_t i = 0; i < reader.size(); ++i)
    if (reader.scheme(i).name == name) return to_packed_row(reader.read(i));
  throw Error(packed_path, "has no layer '" + name + "' any more");
}

OpenedModel open_model_for_view(const std::string& path) {
  auto file = std::make_shared<ModelFile>(open_model_file(path));
  OpenedModel out;
  ui::ModelSummary& s = out.summary;
  s.path = QString::fromStdString(path);
  s.format = QString::fromLatin1(model_format_name(file->format));
  s.architecture = QString::fromStdString(file->architecture);
  s.params = file->parameter_count();
  s.bytes = file->byte_count();
  s.tensors.reserve(qsizetype(file->tensors.size()));
  for (const Tensor& t : file->tensors) {
    ui::TensorRow r;
    r.name = QString::fromStdString(t.name());
    for (int64_t d : t.shape()) r.shape.push_back(d);
    const std::string_view dt = dtype_name(t.dtype());
    r.dtype = QString::fromLatin1(dt.data(), qsizetype(dt.size()));
    r.params = quint64(t.numel());
    r.bytes = t.nbytes();
    r.macs_per_token = macs_per_token(*file, t);
    s.tensors.push_back(std::move(r));
  }
  attach_packed(path, s);
  attach_checkpoint_layers(*file, s);
  out.file = std::move(file);
  return out;
}

}  // namespace mcw::studio
