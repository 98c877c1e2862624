// Sequential calibration, as GPTQ and SparseGPT run it: calibration windows go through the
// model one decoder block at a time, and inside a block one group of linear layers at a
// time (q/k/v, then o, then gate/up, then down). Each group first sees the inputs it gets
// from the already-compressed layers before it (observe), then may be compressed
// (compress) before the block goes on, so later layers adapt to earlier errors. Memory
// stays at the hidden states of the calibration set plus one block's activations.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/core/progress.h"
#include "engine/model/llama_model.h"

namespace mcw {

struct LinearGroup {
  int64_t layer = 0;
  std::vector<std::string> names;  // HF names of the linears sharing one input
  int64_t in_features = 0;
};

// The four groups of each block, in the order the block runs them.
std::vector<LinearGroup> linear_groups(const LlamaModel& model);
// The f32 weight behind an HF linear name ("model.layers.3.mlp.up_proj.weight").
Tensor* find_weight(LlamaModel& model, const std::string& name);

struct CalibrationHooks {
  // Called once per window with that window's input rows X [rows, group.in_features].
  std::function<void(const LinearGroup&, const float* x, int64_t rows)> observe;
  // Called after every window was observed; may replace the group's weights in the model
  // (same shapes), the layer's output biases and act_int8 bits, and the norm weight in
  // front of the group.
  std::function<void(const LinearGroup&)> compress;
};

void sequential_calibrate(LlamaModel& model, const std::vector<std::vector<int32_t>>& windows,
                          const CalibrationHooks& hooks, const ProgressFn& progress = {},
                          const CancelToken* cancel = nullptr);

// Cuts `tokens` into up to `count` windows of `length` tokens, spread evenly over the text.
std::vector<std::vector<int32_t>> calibration_windows(std::span<const int32_t> tokens,
                                                     int64_t count, int64_t length);

}  // namespace mcw
