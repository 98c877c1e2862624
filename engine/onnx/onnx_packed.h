// Compressed ONNX layers on MCW's deployment kernels: the graph a compressed model's latency
// is measured on. Each layer's last CompressedTensor is packed, and its node multiplies with
// that instead of the decoded f32 weight:
// - quantised codes (no mask or outliers) in the integer GEMM tiles of int8_gemm.h, where
//   the CPU runs them (AVX-512 VNNI): a convolution multiplies a tile of 256 pixels at once,
//   the case that layout is for;
// - everything else, and every coding on other CPUs, as a transformer linear is packed
//   (packed_weight.h: 2:4 pruning keeps half the values, a low-rank pair stays two products,
//   codes meet int8 activations 8 rows at a time);
// - a pruned weight whose mask removes whole input channels (channel_obs; a channel is a
//   Conv's kh·kw columns, a MatMul's one) keeps only the other channels' columns, dense:
//   the node reads only those channels (a Conv gathers their planes before its patches),
//   so the removed ones cost neither weights nor multiplications. The producer still makes
//   them: slicing it too needs the graph's channel coupling (residual adds, SE blocks,
//   depthwise convolutions), which MCW does not trace. Those columns stay f32 on the f32 GEMM
//   (a Conv multiplies its filters with the kept planes' patches channels-first, as the f32
//   Conv does: no moves to rows and back).
//
// Packed: Conv with one group (full and pointwise convolutions: a tile of output pixels'
// patches are the rows of X), MatMul with the weight second, and Gemm. Left on the decoded
// f32 weight: grouped and depthwise convolutions (a 5 × 5 depthwise filter is 25 weights
// per channel, nothing to stream; the direct depthwise loop is faster than any product) and
// ConvTranspose.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "engine/kernels/int8_gemm.h"
#include "engine/kernels/packed_weight.h"
#include "engine/onnx/onnx_conv.h"

namespace mcw {

struct OnnxCompression;
struct OnnxCompressedLayer;
struct OnnxLayer;

// The input channels a pruned weight keeps (channel_columns columns each), in order; empty
// when every channel keeps a weight (or the weight has no mask).
std::vector<int32_t> kept_input_channels(const CompressedTensor& t, int64_t channel_columns);

// One layer's weight in whichever of the layouts above it takes.
class OnnxPackedLayer {
 public:
  OnnxPackedLayer(const CompressedTensor& t, int64_t channel_columns);
  // Y [m, rows] = X [m, cols] · Wᵀ (+ bias), X at full width (a sliced layer gathers its
  // channels' columns first).
  void matmul(const float* X, float* Y, int64_t m, const float* bias = nullptr) const;
  // The same with X holding only the kept channels' columns [m, packed_cols()].
  void matmul_kept(const float* X, float* Y, int64_t m, const float* bias = nullptr) const;
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t packed_cols() const {
    return !channels_.empty() ? int64_t(channels_.size()) * channel_columns_
           : gemm_            ? gemm_->cols()
                              : packed_.cols();
  }
  // Kept input channels when the layer is sliced, else empty; then the kept columns, f32
  // [rows, packed_cols()].
  const std::vector<int32_t>& channels() const { return channels_; }
  const float* kept_weight() const { return kept_.data(); }
  int64_t channel_columns() const { return channel_columns_; }
  std::string describe() const;

 private:
  int64_t rows_ = 0, cols_ = 0, channel_columns_ = 1;
  std::vector<int32_t> channels_;
  std::vector<float> kept_;  // sliced: the kept channels' columns
  std::optional<Int8GemmWeight> gemm_;
  PackedWeight packed_;  // neither sliced nor gemm_
};

// Whether a compressed layer runs packed (a Conv with one group, MatMul, Gemm; one part), and
// how many of its columns make one input channel (a Conv's kh·kw, else 1): the rule the
// packed graph and the written file's channel slicing share.
bool runs_packed(const OnnxCompressedLayer& l);
int64_t channel_columns(const OnnxLayer& layer);

// Node index -> its packed weight, for every compressed layer a packed kernel runs.
using OnnxPackedLayers = std::map<size_t, std::shared_ptr<const OnnxPackedLayer>>;
OnnxPackedLayers pack_onnx_layers(const OnnxCompression& c);

// One image of a Conv with one group on a packed weight [co, channels·kh·kw]: src
// [channels, h, w], out [co, oh·ow] = W · patches (+ bias). The patches of a run of pixels
// (the whole map, up to 4 MB of them) are moved to rows of X, multiplied in one product, and
// moved back to channels-first; the moves run in parallel by pieces of 64 pixels.
void packed_conv_image(const OnnxPackedLayer& w, const float* src, int64_t channels, int64_t h,
                       int64_t width, const Window& g, const float* bias, float* out);

}  // namespace mcw
