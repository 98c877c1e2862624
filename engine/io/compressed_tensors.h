// compressed-tensors checkpoints (llm-compressor's output, vLLM's input): config.json's
// quantization_config has quant_method "compressed-tensors" (releases before 0.7 wrote it
// as a top-level "compression_config"), and each quantised linear <p> is stored as
//   pack-quantized   <p>.weight_packed I32 [out, words]: per row, the codes q + 2^(b−1) of
//                    b-bit signed q, LSB first, 32/b per word (0.18 and later: one
//                    continuous bitstream, so 3-, 5-, 6- and 7-bit codes may straddle
//                    words; the width tells which), <p>.weight_shape [out, in];
//   int-quantized    <p>.weight I8 [out, in] (naive-quantized is the same layout);
//   float-quantized  <p>.weight F8_E4M3 [out, in];
// with <p>.weight_scale (F16/BF16/F32) of shape [1] (tensor), [out, 1] (channel),
// [out, groups] (group) or [ceil(out/bh), ceil(in/bw)] (block), <p>.weight_zero_point for
// asymmetric int schemes (packed like the codes but along out, or I8 like the scale in
// releases before 0.9.4) and <p>.weight_g_idx I32 [in] for activation-ordered groups.
//   W[o, i] = (q − zp) · scale,  computed in the scale's dtype as compressed-tensors does.
// The strategy is read off the scale's shape, as the library itself does; the code width
// off the packed width and the config's num_bits. Of the sparse formats (removed from
// compressed-tensors in 0.15), sparse-24-bitmask layers (<p>.shape, <p>.compressed,
// <p>.bitmask; engine/io/sparse24_bitmask.h) are read when the config's sparsity_config
// says that format: float values as a Packed weight, FP8/INT8 codes then scaled as above;
// sparse-bitmask (unstructured) is refused with a clear error.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "engine/io/model_file.h"

namespace mcw {

// The compressed-tensors config of a model's hparams, or null when it has none.
const nlohmann::ordered_json* compressed_tensors_config(const nlohmann::ordered_json& hparams);

// Replaces each quantised linear's parts by one Packed `<p>.weight` (engine/core/tensor.h)
// decoded from the mapped file on demand. Throws mcw::Error naming `config_path` or the
// model and the tensor for anything inconsistent or not read.
void present_compressed_tensors(ModelFile& model, const nlohmann::ordered_json& config,
                                const std::string& config_path);

}  // namespace mcw
