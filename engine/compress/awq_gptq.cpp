#include "engine/compress/awq_gptq.h"

#include "engine/core/error.h"

namespace mcw {

std::vector<CompressedTensor> quantize_awq_gptq(const std::vector<AwqLayer>& layers,
                                                const LayerStats& stats,
                                                const std::vector<float>& s,
                                                const GptqOptions& opt,
                                                const CancelToken* cancel) {
  const LayerStats scaled = scale_layer_stats(stats, s);  // checks s against the statistics
  const int64_t cols = stats.cols;
  std::vector<CompressedTensor> out;
  for (const AwqLayer& l : layers) {
    const std::vector<float> ws = scaled_columns(l.w, l.rows, cols, s);
    out.push_back(quantize_gptq(ws.data(), l.rows, cols, scaled, opt, cancel, l.name));
  }
  return out;
}

}  // namespace mcw
