// The sensitivity scan: every linear layer compressed alone at every setting (8/4/3/2-bit
// RTN, 25/50/75 % magnitude sparsity, or the caller's own list), each cell scored by one
// measure: the KL divergence of the model to the original on calibration windows (exact,
// the default), or a cheap proxy, the relative output error of the layer (from its input
// statistics XᵀX, no model forward per cell) or of its decoder block. The table it returns
// is the layer x setting heatmap of the studio and the input of the mixed-precision
// search. Cells are cached in the run store under the model's fingerprint and a key naming
// the measure: the same scan asked again reads them back, a different model, text,
// window, measure or setting recomputes them.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/compress/compress_llama.h"
#include "engine/core/progress.h"
#include "engine/model/llama_model.h"
#include "engine/recipe/recipe.h"
#include "engine/runs/run_store.h"
#include "engine/search/block_inputs.h"

namespace mcw {

// One column of the table: a one-stage recipe applied to one layer at a time.
struct ScanSetting {
  std::string name;       // "w4", "s50": the column's label and part of the cache key
  std::string algorithm;  // any recipe algorithm that compresses a single linear
  nlohmann::json params = nlohmann::json::object();  // missing keys take the defaults
};

// Linear weights of the model in model order: the rows of a full scan.
std::vector<std::string> linear_layer_names(const LlamaModel& model);

// w8 w4 w3 w2 (RTN, asymmetric, groups of 128 columns) and s25 s50 s75 (magnitude,
// unstructured): none needs calibration text.
std::vector<ScanSetting> default_scan_settings();
// "w<bits>" or "w<bits>g<group>" (RTN, asymmetric; bits 2/3/4/8, group 32/64/128, default
// 128) and "s<percent>" (magnitude, unstructured, 1..99). Throws mcw::Error otherwise.
ScanSetting scan_setting_from_name(const std::string& name);
// True for settings whose algorithm quantizes (levels of a mixed-precision search).
bool is_quantization_setting(const ScanSetting& s);

// The recipe of one cell: `setting` on exactly `layer`. A group size that does not divide
// the layer's `in_features` input columns falls back to the largest of 128/64/32 that
// does, else to one scale per output channel. Throws mcw::Error for an invalid setting.
Recipe scan_cell_recipe(const ScanSetting& setting, const std::string& layer, int64_t in_features);

// What a cell's value is.
//  kl:    mean KL(original || model with the layer compressed) per scored token, end to end.
//  layer: tr(ΔW·XᵀX·ΔWᵀ) / tr(W·XᵀX·Wᵀ), X the layer's inputs on the calibration windows
//         (CompressOptions::calib_windows × calib_window) of the original model.
//  block: Σ‖Y' − Y‖² / Σ‖Y‖², Y the output of the layer's decoder block (the residual stream
//         after it) on the measured windows, Y' the same with the layer compressed.
enum class SensitivityMeasure { Kl, Layer, Block };
const char* measure_name(SensitivityMeasure m);  // "kl", "layer", "block"
// Throws mcw::Error for another name.
SensitivityMeasure measure_from_name(const std::string& name);
// "KL divergence to the original (nats/token)", "relative output error of the layer", ...
const char* measure_title(SensitivityMeasure m);

struct SensitivityCell {
  std::string layer, setting;
  double kl = 0;          // kl measure: mean KL(original || compressed) per scored token (nats)
  double perplexity = 0;  // kl measure: of the calibration windows
  double top1 = 0;        // kl measure: agreement of the argmax with the original's
  double error = 0;       // layer / block measures: the relative output error
  uint64_t bits = 0;      // storage bits of the compressed layer (compress_llama's accounting)
  bool cached = false;    // read back from the run store
};

struct SensitivityTable {
  std::string model_fingerprint;
  SensitivityMeasure measure = SensitivityMeasure::Kl;
  std::vector<std::string> layers;         // rows: linear weights in model order
  std::vector<uint64_t> layer_parameters;  // weights per row
  std::vector<int64_t> layer_in_features;  // input columns per row
  std::vector<ScanSetting> settings;       // columns
  std::vector<SensitivityCell> cells;      // row-major: layers x settings
  uint64_t model_parameters = 0;           // of the whole model
  int64_t windows = 0, window = 0;         // what was measured (layer: the calibration windows)
  double baseline_perplexity = 0;          // kl: of the original model, 0 when all cells were cached
  int64_t cached = 0, computed = 0;        // cells read back / measured now

  const SensitivityCell& at(size_t layer, size_t setting) const {
    return cells[layer * settings.size() + setting];
  }
  // The cell's value under the table's measure (kl, or the relative error).
  double value(size_t layer, size_t setting) const {
    const SensitivityCell& c = at(layer, setting);
    return measure == SensitivityMeasure::Kl ? c.kl : c.error;
  }
  std::optional<size_t> layer_index(const std::string& name) const;
  std::optional<size_t> setting_index(const std::string& name) const;
};

struct SensitivityOptions {
  std::vector<ScanSetting> settings = default_scan_settings();
  SensitivityMeasure measure = SensitivityMeasure::Kl;
  // Rows scanned: the linears whose name after "model.layers." starts with one of these
  // ("3.", "0.self_attn.q_proj"); empty: every linear.
  std::vector<std::string> layer_prefixes;
  int64_t windows = 8;       // kl, block: windows measured per cell (fewer when the text is short)
  int64_t window = 256;      // tokens per window, shortened to the model's context
  // Settings that need calibration statistics, and the layer measure's inputs (its
  // calib_windows × calib_window).
  CompressOptions compress;
  // kl: start a cell of block L from the kept inputs of block L (the same numbers as
  // running the whole model; false runs the whole model per cell). block: where the kept
  // block inputs live.
  bool reuse_block_inputs = true;
  BlockInputOptions block_inputs;
  // Cells measured at once: each holds the one compressed layer (and the model's owned
  // tensors: all of them for a model built in memory, the norms for a loaded one) and a
  // window's activations and logits. 0: one per hardware thread, bounded so that they and
  // what the scan shares (reference logits, block inputs, statistics) fit in memory_budget
  // bytes (at least one cell runs).
  int max_parallel = 0;
  uint64_t memory_budget = uint64_t(4) << 30;
  // Called once per cell, cached or computed, as soon as it is known. Computed cells
  // arrive from oneTBB worker threads (never two calls at once): a GUI must hand the cell
  // to its own thread.
  std::function<void(const SensitivityCell&)> on_cell;
};

// Bytes a scan holds, known before it starts.
struct SensitivityMemory {
  uint64_t reference_logits = 0;  // kl: scored tokens × vocabulary × 4
  uint64_t block_inputs = 0;      // kl (reusing them), block: (blocks + 1) × tokens × dim
  uint64_t statistics = 0;        // layer: one group's XᵀX (f64 and an f32 copy)
  uint64_t per_cell = 0;          // each cell in flight
  int64_t parallel = 1;           // cells in flight
  uint64_t total() const {
    return reference_logits + block_inputs + statistics + per_cell * uint64_t(parallel);
  }
};

class SensitivityScan {
 public:
  // `base` and `calibration_tokens` must outlive the scan (they are not copied).
  // `calibration_tokens` are the measured text (and the calibration text of settings that
  // need statistics). Throws mcw::Error when it is shorter than 2 tokens or a setting is
  // invalid (unknown algorithm or parameter, a duplicated name).
  SensitivityScan(const LlamaModel& base, std::string model_fingerprint,
                  std::span<const int32_t> calibration_tokens, SensitivityOptions options = {});

  // Computes the cells `store` does not hold (all of them without a store) and stores each
  // as soon as it is measured, so a cancelled scan keeps its finished cells. Throws
  // mcw::Cancelled between cells when `cancel` fires.
  SensitivityTable run(RunStore* store, const ProgressFn& progress = {},
                       const CancelToken* cancel = nullptr);

  // The run-store metric key of one measured quantity of a setting: "kl", "ppl", "top1",
  // "bits" for the kl measure ("kl@8x256#<12 hex digits>", the digest covering the
  // setting's algorithm and parameters, the measured tokens and windows, and the
  // calibration options); "layer" or "block" and "bits" for the proxies (the digest also
  // covers the measure's name).
  std::string metric_key(const std::string& quantity, size_t setting) const;
  int64_t windows() const { return windows_; }  // what the measure reads (layer: calibration)
  int64_t window() const { return window_; }
  SensitivityMemory memory_estimate() const;

 private:
  bool scanned(const std::string& layer) const;  // by opt_.layer_prefixes

  const LlamaModel& base_;
  std::string fingerprint_;
  std::span<const int32_t> tokens_;
  SensitivityOptions opt_;
  int64_t window_ = 0, windows_ = 0;
  int64_t measured_tokens_ = 0;       // kl, block: tokens of the measured windows
  std::vector<std::string> digests_;  // per setting
};

}  // namespace mcw
