// A recovered model written as `mcw compress` writes a compressed one (StreamedLlamaWriter:
// one shard per block in the output dtype, the rest, the index, config.json and
// packed.safetensors), one block at a time, so that a real-size recovery never holds the
// model in f32: each block's layers are folded (fold_layer: QAT's trained layers, or the
// adapted layers merged and re-coded on their grids) or merged dense, decoded, written and
// dropped before the next block.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/progress.h"
#include "engine/model/llama_model.h"
#include "engine/train/recovery.h"

namespace mcw {

enum class RecoveryMerge {
  Recode,  // every packed layer kept in its layout: trained (QAT) or re-coded (LoRA)
  Dense,   // adapters merged into dense weights (W + s·B·A in the output dtype); no packed file
};

struct RecoveredModel {
  LlamaModel model;  // views of the written files: the model as written
  std::vector<CompressedTensor> layers;  // in model order (payloads dropped once written,
                                         // unless kept for a scratch model)
  std::vector<std::pair<std::string, double>> added_error;  // re-coded layers
  size_t packed_layers = 0;                                 // in packed.safetensors
};

// `dir` exists (a staging directory). `base`: the model recovery started from (its dense
// weights, usually mapped); `packed`: its compressed layers; `r`: the recovery's adapters
// or QAT layers. Throws mcw::Error as fold_layer does (a low-rank layer cannot be re-coded),
// Cancelled between blocks. `scratch`: a model that is only evaluated and thrown away (a
// project run): the blocks are written and mapped as usual, the layers keep their payloads
// (for the packed kernels) and nothing else is written (StreamedLlamaWriter::scratch).
RecoveredModel write_recovered_model(const std::string& dir, const LlamaModel& base,
                                     const std::vector<CompressedTensor>& packed,
                                     const RecoveryResult& r, RecoveryMerge merge,
                                     const CancelToken* cancel = nullptr, bool scratch = false);

}  // namespace mcw
