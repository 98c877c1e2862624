#include "engine/onnx/onnx_packed.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <vector>

#include "engine/kernels/transpose.h"
#include "engine/onnx/onnx_compress.h"

namespace mcw {

OnnxPackedLayer::OnnxPackedLayer(const CompressedTensor& t) {
  if (int8_gemm_fast()) gemm_ = Int8GemmWeight::from_compressed(t);
  if (!gemm_) packed_ = PackedWeight::from_compressed(t);
}

void OnnxPackedLayer::matmul(const float* X, float* Y, int64_t m, const float* bias) const {
  if (gemm_)
    gemm_->matmul(X, gemm_->cols(), Y, gemm_->rows(), m, bias);
  else
    packed_.matmul(X, Y, m, bias);
}

OnnxPackedLayers pack_onnx_layers(const OnnxCompression& c) {
  OnnxPackedLayers packed;
  for (const OnnxCompressedLayer& l : c.layers) {
    const bool runs_packed = l.layer.op == "MatMul" || l.layer.op == "Gemm" ||
                             (l.layer.op == "Conv" && l.layer.groups == 1);
    if (runs_packed && l.parts.size() == 1)
      packed[l.layer.node] = std::make_shared<const OnnxPackedLayer>(l.parts.front());
  }
  return packed;
}

void packed_conv_image(const OnnxPackedLayer& w, const float* src, int64_t channels, int64_t h,
                       int64_t width, const Window& g, const float* bias, float* out) {
  const int64_t pixels = g.oh * g.ow, patch = w.cols(), co = w.rows();
  const bool pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph0 == 0 &&
                         g.pw0 == 0 && g.ph1 == 0 && g.pw1 == 0;
  constexpr int64_t kTile = 256;
  const int64_t tiles = (pixels + kTile - 1) / kTile;
  tbb::parallel_for(int64_t(0), tiles, [&](int64_t t) {
    const int64_t p0 = t * kTile, n = std::min(pixels, p0 + kTile) - p0;
    std::vector<float> cols, rows(size_t(n * patch)), y(size_t(n * co));
    if (pointwise) {  // the patches are the input's columns p0 .. p0 + n
      transpose_f32(src + p0, pixels, patch, n, rows.data(), patch);
    } else {
      cols.resize(size_t(patch * n));
      conv_patches_range(src, channels, h, width, g, p0, p0 + n, cols.data());
      transpose_f32(cols.data(), n, patch, n, rows.data(), patch);
    }
    w.matmul(rows.data(), y.data(), n, bias);
    transpose_f32(y.data(), co, n, co, out + p0, pixels);
  });
}

}  // namespace mcw
