// GGUF files that llama.cpp loads and runs, from any Llama-family model MCW opens (an HF
// directory, an MCW compressed model directory, a GGUF, a llama2.c checkpoint): the
// architecture's key/values, the tokenizer (gguf_tokenizer.h), and every tensor in the type
// llama.cpp's own quantizer would give it for the chosen file type (gguf_file_type.h),
// encoded from the source's values with ggml's reference quantisers.
//
// Memory: the source stays mapped in its own dtype; tensors are produced a chunk of rows at
// a time (one f32 row per thread plus a 16 MB output chunk), so an 8 B model exports in
// about the memory of its largest row chunk, not of the model.
//
// Each tensor's relative error ‖Ŵ − W‖/‖W‖ (Ŵ the GGUF's decoded values, W the source's) is
// measured while it is written: for an MCW compressed model it is what the GGUF mapping adds
// on top of MCW's own compression.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/progress.h"
#include "engine/export/gguf_file_type.h"
#include "engine/io/gguf.h"
#include "engine/model/llama_model.h"

namespace mcw {

struct GgufExportTensor {
  std::string name;  // GGUF name
  DType type;
  double rel_error = 0;     // ‖Ŵ − W‖ / ‖W‖ (0 for an all-zero W)
  // With an importance matrix: the same with column j weighted by its mean x_j², i.e. the
  // relative output error for inputs of those mean squares (cross terms left out).
  std::optional<double> weighted_rel_error;
  bool codes_kept = false;  // MCW's compressed codes written as they are (gguf_codes.h)
  std::string requantised_because;  // a compressed layer whose codes did not fit, and why
  // Re-quantised by GPTQ on the block grid (GgufCalibration::Gptq): the relative output
  // error on the layer's calibration inputs X, √(tr(ΔW·XᵀX·ΔWᵀ) / tr(W·XᵀX·Wᵀ)), of the
  // blocks written and of those llama-quantize --imatrix would write (gguf_gptq.h).
  std::optional<double> gptq_output_error, imatrix_output_error;
  double gptq_damp = 0;  // the largest dampening its parts' Hessians needed (0.01 unless raised)
};

struct GgufExportReport {
  std::vector<GgufExportTensor> tensors;  // in file order
  uint64_t file_bytes = 0;
};

// What the calibration windows are used for.
enum class GgufCalibration {
  Importance,  // llama.cpp's importance matrix (importance_matrix.h), blocks encoded as
               // llama-quantize --imatrix encodes them
  Gptq,        // GPTQ with the block format as its grid (gguf_gptq.h) for every linear
               // whose type has a code grid; the other tensors as without calibration
};

struct GgufExportOptions {
  // Calibration windows (token ids): when given, used as `method` says; else every tensor
  // is encoded as llama-quantize encodes it without an importance matrix.
  std::vector<std::vector<int32_t>> calibration;
  GgufCalibration method = GgufCalibration::Importance;
  ProgressFn progress;
  const CancelToken* cancel = nullptr;
  // The GPTQ pass resumable: its checkpoint in "<out>.gptq.partial" (a manifest after
  // every block; gguf_gptq_checkpoint.h), kept when the export stops, removed when it is
  // written. A checkpoint found there is refused unless `resume`, which requires one.
  bool resumable = false;
  bool resume = false;
  std::function<void(int64_t next_block)> on_checkpoint;  // after each manifest (fault tests)
  std::function<void(int64_t done, int64_t blocks)> on_resume;  // a checkpoint was taken up
};

// `model_path`: anything open_model_file takes that loads as a Llama-family model (with
// packed.safetensors beside it, as mcw compress writes, its codes are kept where they fit
// the types exactly: gguf_codes.h). Writes `out` atomically (nothing is left on error or
// cancel). Throws mcw::Error naming the file (an unknown type, a model or tokenizer GGUF
// cannot carry, calibration windows longer than the context), mcw::Cancelled on cancel.
GgufExportReport export_gguf(const std::string& model_path, const std::string& out,
                             const GgufFileType& type, const GgufExportOptions& options = {});

// The llama.cpp architecture MCW writes a config as ("llama", or "qwen2" for a Qwen2).
std::string gguf_architecture(const LlamaConfig& c);

class PackedSafetensorsReader;
struct GgufGptqError;

struct GgufWriteOptions {
  std::vector<GGUFKeyValue> extra;  // beside the architecture's (tokenizer, file type)
  std::function<DType(const GgufTensorPlace&)> type_of;  // each tensor's type
  // The model's compressed layers (by HF name): where a layer's codes are exactly blocks of
  // its type they are written as they are, else its values are re-quantised.
  const PackedSafetensorsReader* packed = nullptr;
  // llama.cpp's imatrix entries by HF weight name (importance_matrix.h); weights without
  // one are encoded unweighted.
  const std::map<std::string, std::vector<float>>* importance = nullptr;
  // The errors of the linears the GPTQ pass re-quantised (by HF name; their tensors in the
  // model are already in the file's type): reported instead of the copy's zero error.
  const std::map<std::string, GgufGptqError>* requantised = nullptr;
  ProgressFn progress;
  const CancelToken* cancel = nullptr;
};

// Writes `model` with the architecture's key/values: the core of export_gguf and
// save_llama_gguf.
GgufExportReport write_llama_gguf(const LlamaModel& model, const std::string& path,
                                  GgufWriteOptions options);

// Every matrix in `dtype` (F32, F16, BF16 or a block type; a matrix whose rows are not
// whole blocks stays F32), norms and biases F32, no tokenizer: the studio's plain export
// and the tests' way to make a GGUF of a model in memory.
void save_llama_gguf(const LlamaModel& model, const std::string& path, DType dtype = DType::F32);

}  // namespace mcw
