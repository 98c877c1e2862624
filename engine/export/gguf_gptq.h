// The GGUF export's GPTQ pass (GgufExportOptions::method = Gptq): every linear whose GGUF
// type has a code grid is re-quantised by GPTQ with that block format as its grid
// (engine/compress/block_gptq.h), block by block in GPTQ's sequential order: the
// calibration windows run through the model one decoder block at a time (calibrate.h),
// each group of linears sees its input from the already re-quantised layers before it,
// collects XᵀX, and is quantised before the block goes on.
//
// The re-quantised blocks go to a nameless file each in `scratch_dir` (O_TMPFILE: nothing is
// left behind however the process ends) and replace the model's weights as views of those
// files (so the GGUF writer copies them as they are, and later
// blocks' forward passes read them); memory holds one group's XᵀX, its weight in f32 and
// the factor of H⁻¹, plus the calibration's hidden states (spilled past a budget).
//
// For each re-quantised linear the pass measures, on that layer's own calibration inputs
// X, the relative output error √(tr(ΔW·XᵀX·ΔWᵀ) / tr(W·XᵀX·Wᵀ)) of the GPTQ blocks and of
// the blocks llama-quantize --imatrix would write from the same mean x² (the baseline GPTQ
// must beat), and the plain weight error ‖ΔW‖ / ‖W‖.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/progress.h"
#include "engine/model/llama_model.h"

namespace mcw {

class GgufGptqCheckpoint;

struct GgufGptqError {
  DType type = DType::F32;
  double diff = 0, ref = 0;          // ‖ΔW‖², ‖W‖²
  double out_diff = 0, out_ref = 0;  // tr(ΔW·H·ΔWᵀ), tr(W·H·Wᵀ)
  double baseline_out_diff = 0;      // tr(ΔW·H·ΔWᵀ) of the --imatrix encoding
  double percdamp = 0;
};

struct GgufGptqOptions {
  // The GGUF type of each HF linear name, or nullopt for a linear left to the writer (a
  // type without a code grid, or MCW codes kept as they are).
  std::function<std::optional<DType>(const std::string& hf)> type_of;
  std::string scratch_dir;
  uint64_t activation_budget = uint64_t(1) << 30;  // hidden states past it spill to scratch_dir
  ProgressFn progress;
  const CancelToken* cancel = nullptr;
  // Resumable (gguf_gptq_checkpoint.h): the re-quantised weights go to named files in the
  // checkpoint's directory instead of nameless scratch files, a manifest follows every
  // block, and a manifest already there is gone on from.
  GgufGptqCheckpoint* checkpoint = nullptr;
  std::function<void(int64_t next_block)> on_checkpoint;  // after each manifest
  std::function<void(int64_t done, int64_t blocks)> on_resume;  // a checkpoint was taken up
};

// Re-quantises `model`'s linears in place (see above); returns the errors by HF name.
std::map<std::string, GgufGptqError> gptq_for_gguf(LlamaModel& model,
                                                   const std::vector<std::vector<int32_t>>& windows,
                                                   const GgufGptqOptions& opt);

}  // namespace mcw
