// The sensitivity scan: every linear layer compressed alone at every setting (8/4/3/2-bit
// RTN, 25/50/75 % magnitude sparsity, or the caller's own list), each cell scored by the KL
// divergence of the model to the original on calibration windows. The table it returns is
// the layer x setting heatmap of the studio and the input of the mixed-precision search.
// Cells are cached in the run store under the model's fingerprint: the same scan asked
// again reads them back, a different model, text, window or setting recomputes them.
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

namespace mcw {

// One column of the table: a one-stage recipe applied to one layer at a time.
struct ScanSetting {
  std::string name;       // "w4", "s50": the column's label and part of the cache key
  std::string algorithm;  // any recipe algorithm that compresses a single linear
  nlohmann::json params = nlohmann::json::object();  // missing keys take the defaults
};

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

struct SensitivityCell {
  std::string layer, setting;
  double kl = 0;          // mean KL(original || compressed) per scored token (nats)
  double perplexity = 0;  // of the calibration windows
  double top1 = 0;        // agreement of the argmax with the original's
  uint64_t bits = 0;      // storage bits of the compressed layer (compress_llama's accounting)
  bool cached = false;    // read back from the run store
};

struct SensitivityTable {
  std::string model_fingerprint;
  std::vector<std::string> layers;         // rows: linear weights in model order
  std::vector<uint64_t> layer_parameters;  // weights per row
  std::vector<int64_t> layer_in_features;  // input columns per row
  std::vector<ScanSetting> settings;       // columns
  std::vector<SensitivityCell> cells;      // row-major: layers x settings
  uint64_t model_parameters = 0;           // of the whole model
  int64_t windows = 0, window = 0;         // what was measured
  double baseline_perplexity = 0;          // of the original model, 0 when all cells were cached
  int64_t cached = 0, computed = 0;        // cells read back / measured now

  const SensitivityCell& at(size_t layer, size_t setting) const {
    return cells[layer * settings.size() + setting];
  }
  std::optional<size_t> layer_index(const std::string& name) const;
  std::optional<size_t> setting_index(const std::string& name) const;
};

struct SensitivityOptions {
  std::vector<ScanSetting> settings = default_scan_settings();
  int64_t windows = 8;       // calibration windows measured per cell (fewer when the text is short)
  int64_t window = 256;      // tokens per window, shortened to the model's context
  CompressOptions compress;  // for settings that need calibration statistics
  // Cells measured at once: each holds a copy of the model. 0: one per hardware thread,
  // bounded so that the copies fit in memory_budget bytes (at least one cell runs).
  int max_parallel = 0;
  uint64_t memory_budget = uint64_t(4) << 30;
  // Called once per cell, cached or computed, as soon as it is known. Computed cells
  // arrive from oneTBB worker threads (never two calls at once): a GUI must hand the cell
  // to its own thread.
  std::function<void(const SensitivityCell&)> on_cell;
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

  // The run-store metric key of one measured quantity ("kl", "ppl", "top1", "bits") of a
  // setting: "kl@8x256#<12 hex digits>", the digest covering the setting's algorithm and
  // parameters, the measured tokens and windows, and the calibration options.
  std::string metric_key(const std::string& quantity, size_t setting) const;
  int64_t windows() const { return windows_; }
  int64_t window() const { return window_; }

 private:
  const LlamaModel& base_;
  std::string fingerprint_;
  std::span<const int32_t> tokens_;
  SensitivityOptions opt_;
  int64_t window_ = 0, windows_ = 0;
  std::vector<std::string> digests_;  // per setting
};

}  // namespace mcw
