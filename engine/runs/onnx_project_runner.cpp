#include "engine/runs/onnx_project_runner.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "engine/eval/latency.h"
#include "engine/onnx/onnx_compress.h"
#include "engine/runs/fingerprint.h"
#include "engine/runs/record_run.h"
#include "engine/search/onnx_sensitivity.h"

namespace mcw {

namespace fs = std::filesystem;

void load_onnx_project_inputs(ProjectRunInputs& in, const ImageLoader& images) {
  const Project& p = in.project;
  if (!images)  // the callers that pass no image reader work on transformers
    throw Error(in.project_file,
                "the project's model is an ONNX graph; this works on transformers (an ONNX "
                "project runs its recipes with mcw run or the studio; mcw sensitivity "
                "MODEL.onnx --eval SET scans its layers)");
  auto onnx = std::make_shared<OnnxProjectInputs>();
  onnx->model = read_onnx(p.model_path);
  OnnxRunner::check(onnx->model);  // an unsupported operator is refused before any run
  onnx->evaluation = read_ocr_set(p.evaluation_path);
  if (!p.calibration_path.empty()) onnx->calibration = read_ocr_set(p.calibration_path);
  if (onnx->evaluation.kind == OcrSet::Lines)
    onnx->keys =
        load_ocr_keys((fs::path(p.model_path).parent_path() / "ppocr_keys_v1.txt").string());
  onnx->images = images;
  in.fingerprint = model_fingerprint(open_model_file(p.model_path));
  in.onnx = std::move(onnx);
}

namespace {

// The evaluation metrics of `runner` against the original graph (see the header). With
// `packed` (the same compressed graph on the deployment kernels), the latency is packed's
// and the decoded graph's goes beside it; packed's own output is scored too (packed_cer,
// packed_kl), since its int8 activations round what the decoded graph computes exactly.
void add_onnx_eval(std::vector<Metric>& m, const ProjectRunInputs& in, const OnnxRunner& original,
                   const OnnxRunner& runner, const OnnxRunner* packed, const RunHooks& hooks,
                   const CancelToken* cancel) {
  const OnnxProjectInputs& o = *in.onnx;
  const OcrSet& set = o.evaluation;
  const std::string& input = o.model.graph.inputs[0].name;
  const std::string& output = o.model.graph.outputs[0].name;
  OcrScore lines, packed_lines;
  DetScore pages;
  double distance = 0, packed_distance = 0;
  bool kl = false;
  std::vector<double> ms, decoded_ms;
  enter(hooks, "eval");
  run_ocr_set(
      packed ? *packed : runner, set, o.images, SIZE_MAX,
      [&](size_t k, const DetInput& in, const OnnxValue& timed, double seconds) {
        if (cancel) cancel->throw_if_cancelled();
        report(hooks.progress, "eval", "", double(k + 1) / double(set.size()));
        ms.push_back(1e3 * seconds);
        // The baseline times the original itself: its output is the reference already.
        const OnnxValue y0 =
            &runner == &original && !packed ? timed : original.run({{input, in.x}}).at(output);
        OnnxValue decoded;
        if (packed) {
          const auto t0 = std::chrono::steady_clock::now();
          decoded = runner.run({{input, in.x}}).at(output);
          decoded_ms.push_back(
              1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          packed_distance += output_distance(y0, timed, &kl);
        }
        const OnnxValue& y = packed ? decoded : timed;
        distance += output_distance(y0, y, &kl);
        if (set.kind == OcrSet::Lines) {
          lines.add(set.lines[k].text, decode_line(o.model, y, *o.keys));
          if (packed) packed_lines.add(set.lines[k].text, decode_line(o.model, timed, *o.keys));
        } else {
          pages.add(set.pages[k].boxes, page_boxes(o.model, y, in));
        }
      });
  if (set.kind == OcrSet::Lines) {
    m.push_back({"cer", lines.cer()});
    m.push_back({"line_accuracy", lines.line_accuracy()});
  } else {
    m.push_back({"recall", pages.recall()});
    m.push_back({"precision", pages.precision()});
  }
  m.push_back({"kl", distance / double(set.size())});
  m.push_back({"latency_ms_per_image", median(ms)});
  if (packed) {
    m.push_back({"latency_decoded_ms_per_image", median(decoded_ms)});
    m.push_back({"packed_kl", packed_distance / double(set.size())});
    if (set.kind == OcrSet::Lines) m.push_back({"packed_cer", packed_lines.cer()});
  }
  m.push_back({"eval_images", double(set.size())});
}

}  // namespace

RecipeRunOutcome run_onnx_project_recipe(RunStore& store, const ProjectRunInputs& in,
                                         const ProjectRecipe& pr, const std::string& text,
                                         const std::string& source, const RunHooks& hooks,
                                         const CancelToken* cancel) {
  return record_run(
      store, in, pr.name, text,
      [&](std::vector<Metric>& m, std::vector<LayerMetric>& layers, auto&) {
        const OnnxProjectInputs& o = *in.onnx;
        const Recipe recipe = parse_recipe(text, source);
        std::vector<OnnxInputs> calib;
        if (o.calibration)
          calib = ocr_calibration_inputs(o.model, *o.calibration,
                                         size_t(recipe.calibration.value("windows", int64_t(64))),
                                         o.images);
        enter(hooks, "compress");
        const OnnxCompression c = compress_onnx(o.model, recipe, calib, hooks.progress, cancel);
        // One f32 copy of the graph's weights, shared by the three runners.
        const OnnxRunner original(o.model), decoded = compressed_runner(original, c),
                                            packed = compressed_runner(original, c, true);
        add_onnx_eval(m, in, original, decoded, &packed, hooks, cancel);
        m.push_back({"bits_per_weight", double(c.storage_bits) / double(c.parameters)});
        m.push_back({"size_bytes", double(c.storage_bits / 8)});
        m.push_back({"parameters", double(c.parameters)});
        m.push_back({"compress_seconds", c.seconds});
        for (const OnnxCompressedLayer& l : c.layers) {
          layers.push_back({l.layer.name, "relative_error", l.relative_error});
          layers.push_back({l.layer.name, "bits_per_weight",
                            double(l.storage_bits) / double(l.layer.parameters())});
        }
      });
}

RecipeRunOutcome run_onnx_project_baseline(RunStore& store, const ProjectRunInputs& in,
                                           const RunHooks& hooks, const CancelToken* cancel) {
  return record_run(store, in, kBaselineRecipe, "", [&](std::vector<Metric>& m, auto&, auto&) {
    const OnnxModel& model = in.onnx->model;
    const OnnxRunner original(model);
    add_onnx_eval(m, in, original, original, nullptr, hooks, cancel);
    const OnnxWeightSize size = onnx_weight_size(model);
    m.push_back({"bits_per_weight", double(size.bits) / double(size.parameters)});
    m.push_back({"size_bytes", double(size.bits / 8)});
    m.push_back({"parameters", double(size.parameters)});
    m.push_back({"compress_seconds", 0.0});
  });
}

}  // namespace mcw
