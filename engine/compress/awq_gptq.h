// AWQ followed by GPTQ instead of round-to-nearest (the AWQ paper's combination): AWQ's
// search picks the input scale s, then GPTQ quantises W·diag(s) against the statistics of
// the scaled input X·diag(1/s), so its error feedback sees the inputs the layer will get.
#pragma once
#include <vector>

#include "engine/compress/awq.h"
#include "engine/compress/gptq.h"

namespace mcw {

// One CompressedTensor per layer holding the codes of W·diag(s), as AwqResult::layers does
// (awq_effective_weight() gives the weight for the unscaled input). `stats` are those of
// the unscaled input X; `s` usually AwqResult::input_scale.
std::vector<CompressedTensor> quantize_awq_gptq(const std::vector<AwqLayer>& layers,
                                                const LayerStats& stats,
                                                const std::vector<float>& s,
                                                const GptqOptions& opt,
                                                const CancelToken* cancel = nullptr);

}  // namespace mcw
