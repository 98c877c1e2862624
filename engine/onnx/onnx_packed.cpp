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
    w.matmul(rows, y, n, bias);
    tbb::parallel_for(int64_t(0), pieces, [&](int64_t k) {
      const int64_t a = p0 + k * kPiece, b = std::min(p0 + n, a + kPiece);
      transpose_f32(y + (a - p0) * co, co, b - a, co, out + a, pixels);
    });
  }
}

}  // namespace mcw
