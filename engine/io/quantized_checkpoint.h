// GPTQ and AWQ checkpoints as engineers download them: a Hugging Face directory whose
// config.json has a quantization_config, and whose quantised linears are stored as parts
// instead of one `weight`:
//   GPTQ (AutoGPTQ / GPTQModel, quant_method "gptq"), for W [out, in], b bits in 2, 3, 4, 8:
//     qweight I32 [in·b/32, out]  column o holds W[o, :]'s codes as a little-endian
//                                 bitstream of 32-bit words (3-bit codes cross words)
//     qzeros  I32 [groups, out·b/32]  each group's zero points, the same bitstream along out;
//                                 checkpoint_format "gptq" (v1, the default) stores z − 1,
//                                 "gptq_v2" stores z
//     scales  F16 [groups, out]   groups = ceil(in / group_size) (group_size −1: one)
//     g_idx   I32 [in]            optional: the group of each input column (act-order);
//                                 without it column i is in group i / group_size
//     W[o, i] = scales[g, o] · (q[i, o] − z[g, o]),  g = g_idx[i]
//   AWQ (AutoAWQ "gemm" version, quant_method "awq"), 4 bits:
//     qweight I32 [in, out/8], qzeros I32 [in/group_size, out/8]: eight codes per word along
//     out, output 8j + k at bit 4·kAwqOrder[k]; scales F16 [in/group_size, out];
//     W[o, i] = scales[g, o] · (q[i, o] − z[g, o]),  g = i / group_size.
// Each value is computed in f32 and rounded to the scales' dtype, as AutoGPTQ, AutoAWQ and
// transformers dequantise (an fp16 result).
// present_quantized_layers() replaces each such set of parts by one `<prefix>.weight` of
// dtype Packed, shape [out, in], whose values are decoded from the mapped parts on demand
// (nothing is converted at open), so every consumer of weights reads it like any other.
// Model files are untrusted: shapes, dtypes and every g_idx entry are checked at open.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "engine/io/model_file.h"

namespace mcw {

struct QuantizedCheckpointConfig {
  enum class Method { Gptq, Awq } method = Method::Gptq;
  int bits = 4;
  int64_t group_size = 128;     // −1: one group per row
  bool symmetric = false;       // stated by the config (the zeros are stored either way)
  bool act_order = false;       // GPTQ desc_act
  bool zeros_minus_one = true;  // GPTQ v1 ("gptq" checkpoint_format)
};

// The config's quantization_config, or nullopt when there is none. Throws mcw::Error
// naming `path` for a method or setting MCW cannot read.
std::optional<QuantizedCheckpointConfig> quantized_checkpoint_config(
    const nlohmann::ordered_json& hparams, const std::string& path);

// The scheme of a weight present_quantized_layers() made (nullopt for any other tensor):
// the checkpoint's settings, with act_order true only where the layer has a g_idx.
std::optional<QuantizedCheckpointConfig> checkpoint_layer_scheme(const Tensor& weight);

// Replaces every `<prefix>.qweight` with its qzeros, scales (and g_idx) by a Packed
// `<prefix>.weight`. Throws mcw::Error naming the file and tensor on inconsistent parts.
void present_quantized_layers(ModelFile& model, const QuantizedCheckpointConfig& cfg);

}  // namespace mcw
