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
#include <optional>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/progress.h"
#include "engine/eval/latency.h"
#include "engine/kernels/packed_weight.h"
#include "engine/model/llama_model.h"
#include "engine/runs/run_store.h"
#include "engine/search/mixed_precision.h"
#include "engine/search/sensitivity_scan.h"

namespace mcw {

// Milliseconds of one decode step (one input row) through a compressed weight.
using LayerKernelTimer = std::function<double(const CompressedTensor& w)>;

// The median of `repeats` timed batches after a warm-up of the packed kernel: on a packed
// weight (an uncompressed one as pack_uncompressed packs it: a view of a mapped bf16 file
// stays one), or on a compressed weight's layout.
double time_packed_decode_gemv(const PackedWeight& w, int repeats = 15);
double time_packed_decode_gemv(const CompressedTensor& w, int repeats = 15);

struct LayerLatencyTable {
  std::vector<std::string> layers, settings;
  std::vector<double> ms;         // [layer * settings + setting]
  std::vector<double> dense_ms;   // per layer, uncompressed (pack_uncompressed's layout)
  double model_ms_per_token = 0;  // measure_latency of the uncompressed PackedLlama
  double rest_ms = 0;             // model_ms_per_token minus its uncompressed linears (>= 0)
  double at(const std::string& layer, const std::string& setting) const;  // throws if unknown
  // rest_ms from model_ms_per_token and dense_ms (its definition; meaningful when the rows
  // are all of the model's linears).
  void derive_rest();
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

// The run store keeps a table as sensitivity entries of metric latency_metric_key():
// (layer, setting) cells, (layer, kDenseSetting) for the uncompressed layer and
// (kModelLayer, kDenseSetting) for the uncompressed model's step. The key names this
// machine (CPU model, SIMD level, worker threads): a table measured elsewhere is not read
// back, since latency is this machine's.
inline constexpr const char* kDenseSetting = "(dense)";
inline constexpr const char* kModelLayer = "(model)";
std::string latency_metric_key();
void store_layer_latency(RunStore& store, const std::string& model_fingerprint,
                         const LayerLatencyTable& table);
// The stored table for these layers and settings, when every value is there.
std::optional<LayerLatencyTable> load_layer_latency(RunStore& store,
                                                    const std::string& model_fingerprint,
                                                    const std::vector<std::string>& layers,
                                                    const std::vector<std::string>& settings);

}  // namespace mcw
