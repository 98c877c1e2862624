#include "engine/onnx/onnx_packed.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <vector>

#include "engine/kernels/gemm.h"
#include "engine/kernels/transpose.h"
#include "engine/onnx/onnx_compress.h"

namespace mcw {

std::vector<int32_t> kept_input_channels(const CompressedTensor& t, int64_t channel_columns) {
  if (t.mask.empty() || channel_columns <= 0 || t.cols % channel_columns) return {};
  const int64_t channels = t.cols / channel_columns;
  std::vector<char> any(size_t(channels), 0);
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t c = 0; c < t.cols; ++c)
      if (t.kept(r * t.cols + c)) any[size_t(c / channel_columns)] = 1;
  std::vector<int32_t> kept;
  for (int64_t j = 0; j < channels; ++j)
    if (any[size_t(j)]) kept.push_back(int32_t(j));
  if (int64_t(kept.size()) == channels) return {};
  return kept;
}

OnnxPackedLayer::OnnxPackedLayer(const CompressedTensor& t, int64_t channel_columns)
    : rows_(t.rows), cols_(t.cols), channel_columns_(channel_columns) {
  channels_ = kept_input_channels(t, channel_columns);
  if (!channels_.empty()) {  // the kept channels' columns, dense
    const Tensor full = t.dequantize();
    const int64_t b = channel_columns, k = int64_t(channels_.size()) * b;
    kept_.resize(size_t(t.rows * k));
    for (int64_t r = 0; r < t.rows; ++r)
      for (size_t j = 0; j < channels_.size(); ++j)
        std::copy_n(full.as<float>() + r * t.cols + channels_[j] * b, b,
                    kept_.data() + r * k + int64_t(j) * b);
    return;
  }
  if (int8_gemm_fast()) gemm_ = Int8GemmWeight::from_compressed(t);
  if (!gemm_) packed_ = PackedWeight::from_compressed(t);
}

std::string OnnxPackedLayer::describe() const {
  if (!channels_.empty())
    return "f32 dense, " + std::to_string(channels_.size()) + " of " +
           std::to_string(cols_ / channel_columns_) + " input channels";
  return gemm_ ? gemm_->describe() : packed_.describe();
}

void OnnxPackedLayer::matmul_kept(const float* X, float* Y, int64_t m, const float* bias) const {
  const int64_t k = packed_cols();
  if (!channels_.empty())
    matmul_wt_strided(X, k, kept_.data(), k, Y, rows_, m, rows_, k, bias, false);
  else if (gemm_)
    gemm_->matmul(X, gemm_->cols(), Y, gemm_->rows(), m, bias);
  else
    packed_.matmul(X, Y, m, bias);
}

void OnnxPackedLayer::matmul(const float* X, float* Y, int64_t m, const float* bias) const {
  if (channels_.empty()) return matmul_kept(X, Y, m, bias);
  const int64_t b = channel_columns_, k = packed_cols();
  std::vector<float> kept(size_t(m * k));
  for (int64_t i = 0; i < m; ++i)
    for (size_t j = 0; j < channels_.size(); ++j)
      std::copy_n(X + i * cols_ + channels_[j] * b, b, kept.data() + i * k + int64_t(j) * b);
  matmul_kept(kept.data(), Y, m, bias);
}

bool runs_packed(const OnnxCompressedLayer& l) {
  const std::string& op = l.layer.op;
  return l.parts.size() == 1 &&
         (op == "MatMul" || op == "Gemm" || (op == "Conv" && l.layer.groups == 1));
}

int64_t channel_columns(const OnnxLayer& layer) {
  // A Conv's input channel is its kh·kw im2col columns (onnx_layers.h); a MatMul's, one.
  return layer.op == "Conv" ? layer.weight_shape[2] * layer.weight_shape[3] : 1;
}

OnnxPackedLayers pack_onnx_layers(const OnnxCompression& c) {
  OnnxPackedLayers packed;
  for (const OnnxCompressedLayer& l : c.layers)
    if (runs_packed(l))
      packed[l.layer.node] =
          std::make_shared<const OnnxPackedLayer>(l.parts.front(), channel_columns(l.layer));
  return packed;
}

void packed_conv_image(const OnnxPackedLayer& w, const float* src, int64_t channels, int64_t h,
                       int64_t width, const Window& g, const float* bias, float* out) {
  // A sliced layer reads only its kept channels: their planes, gathered, through the f32
  // Conv's own product.
  if (!w.channels().empty()) {
    std::vector<float> planes(w.channels().size() * size_t(h * width));
    for (size_t j = 0; j < w.channels().size(); ++j)
      std::copy_n(src + w.channels()[j] * h * width, h * width,
                  planes.data() + j * size_t(h * width));
    conv_group_f32(w.kept_weight(), w.rows(), planes.data(), int64_t(w.channels().size()), h, width,
                   g, bias, out);
    return;
  }
  const int64_t pixels = g.oh * g.ow, patch = w.packed_cols(), co = w.rows();
  const bool pointwise = g.pointwise();
  // Pixels per product: the whole map while its rows stay under 4 MB (one product shares its
  // rows out best, and each call has a fixed cost), else chunks of at least 256.
  const int64_t chunk =
      std::max<int64_t>(256, std::min(pixels, (int64_t(1) << 20) / std::max(patch, co)));
  constexpr int64_t kPiece = 64;  // pixels per parallel task of the moves in and out
  // Kept by the calling thread: maps of megabytes, allocated afresh per call, cost page
  // faults. The tasks below see them through pointers (a thread_local named in a task would
  // be the worker's own).
  thread_local std::vector<float> rows_kept, y_kept;
  rows_kept.resize(size_t(std::min(chunk, pixels) * patch));
  y_kept.resize(size_t(std::min(chunk, pixels) * co));
  float *const rows = rows_kept.data(), *const y = y_kept.data();
  for (int64_t p0 = 0; p0 < pixels; p0 += chunk) {
    const int64_t n = std::min(pixels, p0 + chunk) - p0, pieces = (n + kPiece - 1) / kPiece;
    tbb::parallel_for(int64_t(0), pieces, [&](int64_t k) {
      const int64_t a = p0 + k * kPiece, b = std::min(p0 + n, a + kPiece);
      float* dst = rows + (a - p0) * patch;
      if (pointwise) {  // the patches are the input's columns a .. b
        transpose_f32(src + a, pixels, patch, b - a, dst, patch);
      } else {
        std::vector<float> cols(size_t(patch * (b - a)));
        conv_patches_range(src, channels, h, width, g, a, b, cols.data());
        transpose_f32(cols.data(), b - a, patch, b - a, dst, patch);
      }
    });
    w.matmul_kept(rows, y, n, bias);
    tbb::parallel_for(int64_t(0), pieces, [&](int64_t k) {
      const int64_t a = p0 + k * kPiece, b = std::min(p0 + n, a + kPiece);
      transpose_f32(y + (a - p0) * co, co, b - a, co, out + a, pixels);
    });
  }
}

}  // namespace mcw
