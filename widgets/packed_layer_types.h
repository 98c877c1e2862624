// One compressed layer of a packed export (packed.safetensors beside the model), as the
// Model panel shows it: the scheme, its accounting, and the quantisation parameters per
// (row, group), all as read from the file. app/ fills it from the engine's CompressedTensor;
// nothing here includes the engine.
#pragma once
#include <QList>
#include <QString>
#include <QtGlobal>

namespace mcw::ui {

struct PackedLayerRow {
  QString name;    // the model tensor it replaces
  QString coding;  // "dense", "affine", "codebook" or "low_rank"
  QString scheme;  // "int4 g32 sym", "f16, 50% sparse", ...
  qint64 rows = 0, cols = 0;
  int bits = 0;  // code width (affine, codebook)
  qint64 group_size = 0, groups = 0;
  bool symmetric = false;  // zero points implied: 2^(bits-1)
  bool act_order = false;  // a g_idx maps columns to groups
  int nm_n = 0, nm_m = 0;  // N:M pattern, 0 when none
  qint64 rank = 0;         // low rank
  double bits_per_weight = 0;
  quint64 storage_bytes = 0;
  double kept_fraction = 1;  // share of weights the mask keeps
  quint64 outliers = 0;      // f16 weights kept exactly on top of the coding
  // AWQ: the input is divided by a per-column scale s, and the parts below code W·diag(s).
  qint64 input_scales = 0;  // 0 when the layer has none
  float input_scale_min = 0, input_scale_max = 0;
  // Row-major per (row, group): [rows * groups]. Zeros are empty when symmetric or not
  // affine; the codebook holds 2^bits centroids per (row, group).
  QList<float> scales, zeros, codebook;
  // False while those are still in the file: a large export's (an 8 B model's are ~55 M
  // values) are read for the layer the panel shows, when it shows it.
  bool parameters_loaded = true;

  bool hasGroupParameters() const {
    return coding == QLatin1String("affine") || coding == QLatin1String("codebook");
  }
};

}  // namespace mcw::ui
