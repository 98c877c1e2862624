// Sequential calibration, as GPTQ and SparseGPT run it: calibration windows go through the
// model one decoder block at a time, and inside a block one group of linear layers at a
// time (q/k/v, then o, then gate/up, then down). Each group first sees the inputs it gets
// from the already-compressed layers before it (observe), then may be compressed
// (compress) before the block goes on, so later layers adapt to earlier errors. Memory
// stays at the hidden states of the calibration set (an ActivationStore: bf16 or f32,
// spilled to a scratch file past a budget) plus one window's activations: the inputs of
// o_proj and down_proj are kept for every window only while they fit in
// CalibrationOptions::reuse_budget, and computed again per window otherwise (the same
// values, bit for bit).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/core/progress.h"
#include "engine/model/llama_model.h"

namespace mcw {

class ActivationStore;

struct LinearGroup {
  int64_t layer = 0;
  std::vector<std::string> names;  // HF names of the linears sharing one input
  int64_t in_features = 0;
  ActInt8 input = kActInt8Qkv;  // which of the block's inputs
};

// The four groups of each block, in the order the block runs them.
std::vector<LinearGroup> linear_groups(const LlamaModel& model);
// The weight behind an HF linear name ("model.layers.3.mlp.up_proj.weight"), as it is
// (a loaded model's is a view of its file, in the file's dtype), or null.
Tensor* find_weight(LlamaModel& model, const std::string& name);
// The same weight made owned f32 first (converted from the file one layer at a time, when
// a compressor reads or changes it); throws mcw::Error when the model has no such weight.
Tensor* find_weight_f32(LlamaModel& model, const std::string& name);
// Every tensor of the model owned f32 (whole-model steps: structured pruning).
void materialize_f32(LlamaModel& model);
// Every tensor of block `layer` owned f32 (a structured stage slicing one block at a time).
void materialize_layer_f32(LlamaModel& model, int64_t layer);

struct CalibrationHooks {
  // Called once per window with that window's input rows X [rows, group.in_features].
  std::function<void(const LinearGroup&, const float* x, int64_t rows)> observe;
  // Called after every window was observed; may replace the group's weights in the model
  // (same shapes), the layer's output biases and act_int8 bits, and the norm weight in
  // front of the group.
  std::function<void(const LinearGroup&)> compress;
  // Called when block `layer` is done (its groups compressed, its outputs formed): its
  // weights will not be read again. `hidden` holds the next block's inputs (a checkpoint
  // may save them: see CalibrationOptions::start_layer).
  std::function<void(int64_t layer, const ActivationStore& hidden)> block_done;
};

// Time and work of the calibration forward pass itself (the blocks' products and
// attention; not the hooks' statistics or compression), to set its speed against the
// machine's GEMM peak.
struct ForwardTally {
  double seconds = 0, flops = 0;
};

struct CalibrationOptions {
  DType activations = DType::F32;             // the hidden states between blocks: F32 or BF16
  uint64_t memory_budget = uint64_t(1) << 62;  // past it, hidden states spill to scratch_dir
  std::string scratch_dir;                     // empty: the system's temporary directory
  uint64_t reuse_budget = uint64_t(1) << 30;  // f32 bytes of o/down inputs kept per block
  // Resuming: blocks before start_layer are done, and start_hidden names the file their
  // last block_done saved (ActivationStore::save), the inputs of block start_layer.
  int64_t start_layer = 0;
  std::string start_hidden;
  // Blocks from end_layer on are not run (-1: all of them): a pass whose hooks want
  // nothing past some block stops there instead of running the rest of the model.
  int64_t end_layer = -1;
  // AWQ's reference order instead of GPTQ's: every group of a block observes the block's
  // forward pass with the weights as they were before this stage (so o_proj sees the
  // uncompressed q/k/v, and the next block the uncompressed block's output); the block's
  // compress hooks run after its forward pass.
  bool uncompressed_inputs = false;
  ForwardTally* forward = nullptr;  // when set, the forward pass adds its time and FLOPs
};

void sequential_calibrate(LlamaModel& model, const std::vector<std::vector<int32_t>>& windows,
                          const CalibrationHooks& hooks, const ProgressFn& progress = {},
                          const CancelToken* cancel = nullptr, const CalibrationOptions& opt = {});

// Cuts `tokens` into up to `count` windows of `length` tokens, spread evenly over the text.
std::vector<std::vector<int32_t>> calibration_windows(std::span<const int32_t> tokens,
                                                     int64_t count, int64_t length);

}  // namespace mcw
