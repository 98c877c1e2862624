// A compressed ONNX graph as an ONNX file any runtime loads: the source file copied field by
// field, with each compressed layer's weight replaced by what the compression stores and a
// few standard operators (opset 9 and later) that decode it in front of the graph:
// - affine codes (RTN, GPTQ): uint8 codes, 4- and 2-bit ones packed two and four to a byte,
//   3-bit ones eight to three bytes (joined into one exact f32 word by a MatMul), f16 scales
//   and uint8 zero points per (row, group); Cast, Div/Floor (unpacking), Sub, Mul,
//   then Reshape (and Transpose for layers whose weight holds the matrix transposed) to the
//   weight's shape, under the weight's own name, so the layer's node reads it unchanged;
// - low-rank factors: A and B in f32 (as evaluated), multiplied by a MatMul;
// - anything else (sparse masks, outliers, codebooks, act-order groups) as the decoded f32
//   weight, which the report's notes list.
// Activation grids become QuantizeLinear + DequantizeLinear in front of each layer where
// the graph's opset has them (10 and later, 8-bit); otherwise a note says they are only in
// the run's report. Decoding gives the values MCW evaluated, bit for bit for affine codes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/onnx/onnx_compress.h"

namespace mcw {

struct OnnxWriteReport {
  uint64_t bytes = 0;              // of the file written
  std::vector<std::string> notes;  // what the file holds otherwise than compressed
};

// Writes `path` (through a temporary file renamed into place); mcw::Error naming it when
// it cannot be written.
OnnxWriteReport write_compressed_onnx(const OnnxModel& model, const OnnxCompression& c,
                                      const std::string& path);

}  // namespace mcw
