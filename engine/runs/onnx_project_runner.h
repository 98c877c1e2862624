// A project whose model is an ONNX graph: its datasets are OCR sets (folders of line images
// with labels.tsv, or pages with boxes.tsv; ocr_eval.h). A run compresses the graph with the
// calibration set's first images (the recipe's `windows`, 64 by default) and scores the
// compressed graph on the evaluation set against the original:
// - a recogniser: "cer", "line_accuracy" and "kl" (mean KL of the per-step character
//   probabilities to the original's, nats; what the plots and the scan use for transformers);
// - a detector: "recall", "precision" and "kl" holding the map's relative squared error;
// and "latency_ms_per_image" (median over the evaluation images of MCW's executor, f32
// with the weights decoded: the executor has no packed kernels for convolutions yet),
// "bits_per_weight", "size_bytes", "parameters", "compress_seconds"; per layer
// "relative_error" and "bits_per_weight". The baseline run scores the original itself, at
// its weights' stored width (32 bits for an f32 graph, where a transformer's baseline
// counts 16).
#pragma once
#include <optional>

#include "engine/io/onnx.h"
#include "engine/ocr/ocr_eval.h"
#include "engine/runs/project_runner.h"

namespace mcw {

struct OnnxProjectInputs {
  OnnxModel model;
  std::optional<OcrSet> calibration;
  OcrSet evaluation;
  std::optional<OcrCharset> keys;  // a recogniser's: ppocr_keys_v1.txt beside the model
  ImageLoader images;
};

// Fills in.onnx (and the fingerprint) for a project whose model is *.onnx.
void load_onnx_project_inputs(ProjectRunInputs& in, const ImageLoader& images);
RecipeRunOutcome run_onnx_project_recipe(RunStore& store, const ProjectRunInputs& in,
                                         const ProjectRecipe& recipe, const std::string& text,
                                         const std::string& source, const RunHooks& hooks,
                                         const CancelToken* cancel);
RecipeRunOutcome run_onnx_project_baseline(RunStore& store, const ProjectRunInputs& in,
                                           const RunHooks& hooks, const CancelToken* cancel);

}  // namespace mcw
