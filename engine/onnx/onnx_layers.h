// The layers of an ONNX graph that MCW compresses: each Conv, ConvTranspose, MatMul or Gemm
// whose weight is a graph weight (an initializer or a Constant) read by that node alone,
// seen as linear layers W [rows = outputs, cols = inputs], one per conv group, so that the
// weight algorithms written for transformer linears (RTN, GPTQ, pruning, ...) apply as they
// are:
// - Conv, weight [O, C/g, kh, kw]: group k is rows O/g, cols C/g·kh·kw (the im2col patch,
//   channel-major as onnx_conv.h lays it out); its input rows are the group's patches.
// - ConvTranspose (group 1 only), weight [C, O, kh, kw]: every input pixel's C values make
//   an O·kh·kw patch of outputs, so rows O·kh·kw, cols C (the weight transposed).
// - MatMul with the weight second, [K, N]: rows N, cols K (transposed); Gemm as its transB
//   says. Input rows are the activation's rows (every leading dimension).
// A layer is named by its weight, which is what recipe targets match.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/onnx.h"
#include "engine/onnx/onnx_value.h"

namespace mcw {

struct OnnxLayer {
  std::string name;  // the weight's name
  size_t node = 0;   // index of the node in the graph
  std::string op;    // Conv, ConvTranspose, MatMul, Gemm
  int64_t groups = 1;
  int64_t rows = 0, cols = 0;  // of one group's matrix
  bool transposed = false;     // the weight holds the matrix as [cols, rows]
  Shape weight_shape;

  int64_t parameters() const { return groups * rows * cols; }
};

// In graph order. A weight read by more than one node, and nodes of these types whose
// weight is computed, are not layers.
std::vector<OnnxLayer> onnx_layers(const OnnxModel& model);

// Group `group`'s matrix [rows, cols] from the layer's weight value, and back.
std::vector<float> layer_matrix(const OnnxLayer& layer, const OnnxValue& weight, int64_t group);
void set_layer_matrix(const OnnxLayer& layer, const float* matrix, int64_t group,
                      OnnxValue& weight);

}  // namespace mcw
