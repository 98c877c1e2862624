// Exporting the model of a finished run of a project (the studio's File ▸ Export model and
// `mcw export PROJECT --run ID`): the run's recipe is compressed again from the project's
// model with its calibration text and options, as project_runner ran it, streamed block by
// block into a model directory (resumable: an export stopped part-way goes on from its last
// finished block when started again to the same place), and then written as
//   HuggingFace        that directory: the decoded weights, packed.safetensors, tokenizer
//   Gguf               llama.cpp's file of `gguf_type` (the run's codes kept where they are
//                      the type's blocks; the rest re-quantised as `gguf_calibration` says)
//   CompressedTensors  llm-compressor's checkpoint vLLM loads
// and recorded as an artifact of the run in the project's store.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/core/progress.h"
#include "engine/export/gguf_file_type.h"

namespace mcw {

enum class RunExportFormat { HuggingFace, Gguf, CompressedTensors };
// How GGUF blocks the run's codes do not fill are re-quantised with the project's
// calibration text: GPTQ on the block grid, llama-quantize --imatrix's encoding, or none.
enum class GgufRequantise { Gptq, Imatrix, None };

struct RunExportOptions {
  RunExportFormat format = RunExportFormat::HuggingFace;
  const GgufFileType* gguf_type = nullptr;  // with Gguf
  GgufRequantise gguf_calibration = GgufRequantise::Gptq;
  std::function<void(const std::string&)> log;  // one line per event worth telling
  ProgressFn progress;
  const CancelToken* cancel = nullptr;
};

struct RunExport {
  std::string kind;  // the artifact: "model-hf", "model-gguf", "model-compressed-tensors"
  std::string weights_file;                  // recorded as the run's artifact
  std::vector<std::string> tokenizer_files;  // in the written directory
  std::string packed_file;                   // packed.safetensors, when written
  size_t packed_layers = 0, sparse24_layers = 0;
  std::string recipe_name;
};

// Throws mcw::Error naming the project, store or run for a run that is missing, not done,
// made on another model, or whose recipe needs calibration text the project no longer has;
// mcw::Cancelled on cancel (a stopped compression keeps its checkpoint, and says so).
RunExport export_run(const std::string& project_file, int64_t run_id, const std::string& path,
                     const RunExportOptions& options);

// "exported run 3 ('w4g128-gptq') to out.gguf ..." for logs.
std::string describe_run_export(const RunExport& e, int64_t run_id, const std::string& path);

// True when `path` names a GGUF file (ends in .gguf, any case).
bool is_gguf_path(const std::string& path);

}  // namespace mcw
