// `mcw export --format compressed-tensors`: an MCW compressed model directory (what
// `mcw compress` writes: the decoded weights plus packed.safetensors) rewritten as a
// compressed-tensors checkpoint, the layout llm-compressor writes and vLLM loads
// (engine/io/compressed_tensors.h has the format).
//
// Group-wise affine layers (RTN, GPTQ, with or without act-order) at 1, 2, 4 or 8 bits go
// out as `pack-quantized` parts with their codes as they are: MCW's codes q in [0, 2^b)
// with zero z are compressed-tensors' signed q − 2^(b−1) with zero point z − 2^(b−1),
// stored offset by 2^(b−1), i.e. the same numbers. Scales are written as F16 (the
// quantisers round them to f16), so a reader that computes in the scales' dtype gets the
// f16-rounded products. One config group per scheme lists its layers by name.
//
// Unquantised layers whose values are 2:4 sparse (every aligned group of 4 along a row has
// at most 2 nonzeros; sparsegpt, magnitude or wanda with pattern 2:4) go out as
// `sparse-24-bitmask` parts (engine/io/sparse24_bitmask.h) in the source's dtype, listed
// by name in quantization_config.sparsity_config's targets (format sparse-24-bitmask,
// sparsity_structure 2:4), the way vLLM's CompressedTensors24 scheme loads them: only in
// a checkpoint without pack-quantized layers (vLLM takes sparse-24 layers only outside any
// quantization group or inside an 8-bit W8A8 one, and a layer of a grouped config outside
// every group fails to load) and only where a fused group (q/k/v, gate/up) is sparse
// throughout. A sparse-only checkpoint's quantization_config holds just quant_method and
// sparsity_config, as llm-compressor writes it.
//
// Layers that have neither form are written dense, in the source's dtype, and listed in
// `ignore`: 3-, 5-, 6- and 7-bit codes (compressed-tensors has two incompatible packings
// for them and nothing in a file says which), unstructured sparsity masks, 2:4 sparse
// quantised layers (vLLM wants marlin-24 or W8A8 codes for those), outliers, codebooks,
// low rank.
//
// AWQ layers keep their input scale s on the layer in MCW; here s is folded into the op
// before the layer (engine/export/awq_fold.h: the RMSNorm weights, v_proj's and up_proj's
// rows), as AutoAWQ does before it quantises, and the layer goes out as its codes. Where
// it cannot fold (an o_proj under grouped-query attention, or layers reading one input with
// different scales) the layer is written dense, saying why.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace mcw {

struct CtExportReport {
  std::vector<std::string> packed;                         // layers written as parts
  std::vector<std::string> sparse24;                       // ... as sparse-24-bitmask parts
  std::vector<std::pair<std::string, std::string>> dense;  // layer, why not packed
  std::vector<std::string> awq_folded;  // packed AWQ layers whose input scale was folded
};

// Writes `out_dir` (atomically: it appears complete or not at all). Throws mcw::Error
// naming the file when `model_dir` is not an MCW compressed model or cannot be read.
CtExportReport export_compressed_tensors(const std::string& model_dir, const std::string& out_dir);

}  // namespace mcw
