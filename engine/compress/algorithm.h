// One compression algorithm as every part of MCW sees it, in one entry: its recipe schema
// (the recipe parser checks stages against it; the recipe editor builds its form from it),
// what it reads from calibration, how it compresses, and what that costs (the resource
// estimate). Each algorithm's own file defines its entry (gptq.cpp: gptq_algorithm());
// algorithm_registry.cpp lists them. Adding an algorithm is its file and one line there;
// compress_llama, the estimate, the sensitivity scan and the editor need no edit.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/compress/layer_stats.h"
#include "engine/compress/structured_stage.h"  // RecordWeightFn
#include "engine/core/progress.h"
#include "engine/model/llama_model.h"
#include "engine/model/llama_tensors.h"  // Width
#include "engine/recipe/recipe.h"  // ParamSpec, CalibrationNeed

namespace mcw {

struct CalibrationOptions;
class ActivationStore;

// One linear weight compressed on its own.
struct LayerJob {
  const Tensor& w;                    // owned f32 [rows = out, cols = in]
  std::string name;                   // the linear's HF name, for messages and the result
  const LayerStats* stats = nullptr;  // what needs() asked for; null for CalibrationNeed::None
  const nlohmann::json& params;       // validated, defaults filled in
  const CancelToken* cancel = nullptr;
  std::string note;  // out: a remark the run log shows with the layer's scheme
};

// The linears of one block that share an input, compressed together (AWQ: one scale vector
// per input), after every calibration window went through them.
struct GroupJob {
  LlamaModel& model;  // weights as they are now; the group's are f32
  int64_t layer = 0;
  std::vector<std::string> names;  // the group's targeted linears, in model order
  const LayerStats& stats;
  // Whole calibration windows of the group's input kept for the algorithm (sample_tokens).
  const float* samples = nullptr;
  int64_t sample_rows = 0;
  const std::vector<int64_t>& sample_windows;  // their row counts, in order
  const nlohmann::json& params;
  const CancelToken* cancel = nullptr;
};

// A stage that runs over the whole model its own way (its own calibration pass, or a change
// of shape), recording each linear it changes.
struct StageJob {
  LlamaModel& model;
  const nlohmann::json& params;
  const std::set<std::string>& targeted;
  const std::vector<std::vector<int32_t>>& windows;  // calibration text
  RecordWeightFn record;
  ProgressFn progress;
  const CancelToken* cancel = nullptr;
  const CalibrationOptions& calibration;
  // Block `layer` is final; `hidden` the next block's inputs when the stage calibrates
  // block by block (null otherwise); `resumable` as BlockDone's.
  std::function<void(int64_t layer, bool resumable, const ActivationStore* hidden)> block_done;
};

// The estimate's view of one targeted linear.
struct CostShape {
  double rows = 0, cols = 0;
  double calib_tokens = 0;                    // calibration tokens of the run
  double dim = 0, q_dim = 0, hidden_dim = 0;  // the block's widths
};
struct LayerCost {
  double stored_bytes = 0;  // the CompressedTensor in memory
  double work_bytes = 0;    // the algorithm's own buffers at its worst moment on this layer
  double flops = 0;         // compressing the layer (the calibration forward is counted apart)
};

struct CompressAlgorithm {
  std::string name, kind, help;  // kind: "quantize", "prune", "low-rank", "structured"
  std::vector<ParamSpec> params;
  CalibrationNeed (*needs)(const nlohmann::json& params) = nullptr;

  // How it compresses: exactly one of the three.
  CompressedTensor (*compress_layer)(LayerJob& job) = nullptr;
  // One CompressedTensor per name of the job, each decoding to the weight the model runs.
  std::vector<CompressedTensor> (*compress_group)(const GroupJob& job) = nullptr;
  void (*run_stage)(StageJob& job) = nullptr;

  // compress_group: keep whole calibration windows of the input, up to this many tokens
  // (0: all); and observe the model as it was before the stage (AWQ's order) rather than
  // the compressed layers before the group (GPTQ's).
  int64_t (*sample_tokens)(const nlohmann::json& params) = nullptr;
  bool (*uncompressed_inputs)(const nlohmann::json& params) = nullptr;

  // Structured stages: the model's config after the stage. Such a stage works on the whole
  // model in f32 and cannot resume part-way.
  LlamaConfig (*reshape)(const LlamaConfig& c, const nlohmann::json& params) = nullptr;
  // Structured stages whose widths are known only after they ran (FLAP's allocation): the
  // widths of kind `w` they leave in a model of `shape` are multiples of this (0: as
  // reshape says), which later group sizes must divide.
  int64_t (*width_multiple)(const nlohmann::json& params, const LlamaConfig& shape,
                            Width w) = nullptr;
  // Pre-flight, before any weight is touched: why this stage cannot run on a model of
  // `shape` with these targets ("" when it can).
  std::string (*refuse)(const nlohmann::json& params, const LlamaConfig& shape,
                        const std::set<std::string>& targeted) = nullptr;

  LayerCost (*cost)(const nlohmann::json& params, const CostShape& shape) = nullptr;
};

const std::vector<CompressAlgorithm>& compress_algorithms();
const CompressAlgorithm* find_algorithm(const std::string& name);
// find_algorithm(algorithm)->needs(params); None for an unknown algorithm.
CalibrationNeed calibration_need(const std::string& algorithm, const nlohmann::json& params);

}  // namespace mcw
