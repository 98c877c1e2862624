// Per-layer decode latency for a latency budget: the time of one decode-shaped
// matrix-vector product (one token) through each linear layer at each level, on this
// machine. The decode step of the whole model is then predicted as the measured time of
// everything else plus the sum over layers, an additive cost the search can trade.
//
// Each level is timed on the kernel a deployment would run (engine/kernels/packed_weight.h:
// 4-bit codes stream 4 bits per weight), so lower bits are genuinely faster where the
// product is memory-bound. Another kernel plugs in as a LayerKernelTimer.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/progress.h"
#include "engine/eval/latency.h"
#include "engine/model/llama_model.h"
#include "engine/search/mixed_precision.h"
#include "engine/search/sensitivity_scan.h"

namespace mcw {

// Milliseconds of one decode step (one input row) through a compressed weight.
using LayerKernelTimer = std::function<double(const CompressedTensor& w)>;

// The median of `repeats` timed batches after a warm-up: matmul_wt_stored on an
// uncompressed weight in its file's dtype (a view of a mapped bf16 file stays one), or the
// packed kernel on a compressed weight.
double time_stored_decode_gemv(const Tensor& w, int repeats = 15);
double time_packed_decode_gemv(const CompressedTensor& w, int repeats = 15);

struct LayerLatencyTable {
  std::vector<std::string> layers, settings;
  std::vector<double> ms;         // [layer * settings + setting]
  std::vector<double> dense_ms;   // per layer, uncompressed (the product on the stored dtype)
  double model_ms_per_token = 0;  // measure_latency of the uncompressed model
  double rest_ms = 0;             // model_ms_per_token minus its uncompressed linears (>= 0)
  double at(const std::string& layer, const std::string& setting) const;  // throws if unknown
  LayerCostFn cost() const;  // a copy of the table as a function
};

// Times each of `settings` with `timer` (time_packed_decode_gemv when empty) on one layer
// per distinct weight shape among `table`'s layers (the first in model order), compressed
// by one compress_llama per setting; the other layers of that shape get its time. So the
// model's weights stay as stored and at most one layer per shape is compressed at once,
// and a calibrated setting's pass runs only to the block of the last of those layers.
LayerLatencyTable measure_layer_latency(const LlamaModel& base, const SensitivityTable& table,
                                        const std::vector<std::string>& settings,
                                        std::span<const int32_t> calibration_tokens,
                                        const CompressOptions& co, const LatencyOptions& model_opt,
                                        const LayerKernelTimer& timer = {},
                                        const ProgressFn& progress = {},
                                        const CancelToken* cancel = nullptr);

}  // namespace mcw
