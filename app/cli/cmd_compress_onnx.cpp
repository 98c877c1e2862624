// `mcw compress MODEL.onnx`: a recipe's layer-wise stages on an ONNX graph's Conv, MatMul
// and Gemm layers, calibrated on an OCR set (line images or pages), written as an ONNX file
// that stores the compressed weights and decodes them with standard operators, with
// OUT.json beside it (each layer's scheme, bits per weight and error; the activation
// grids). --eval scores the original and the compressed graph on a set.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "app/cli/ocr_common.h"
#include "app/cli/progress_bar.h"
#include "engine/core/error.h"
#include "engine/onnx/onnx_compress.h"
#include "engine/onnx/onnx_write_compressed.h"

namespace mcw::cli {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

// The scores and median milliseconds per image on `set` of the original graph, the
// compressed one as decoded (what the written file computes) and the same on the packed
// kernels (onnx_packed.h: int8 activations in the quantised layers' products).
ojson eval_all(const OnnxModel& model, const OnnxCompression& c, const OcrSet& set,
               const std::string& keys_path) {
  const OnnxRunner original(model), compressed = compressed_runner(original, c),
                                    packed = compressed_runner(original, c, true);
  const std::pair<const char*, const OnnxRunner*> runners[] = {
      {"original", &original}, {"compressed", &compressed}, {"packed", &packed}};
  ojson out = {{"set", set.dir}};
  const ImageLoader load = image_loader();
  if (set.kind == OcrSet::Pages) {
    for (const auto& [key, runner] : runners) {
      const DetScore s = score_detector(*runner, set, load);
      out[key] = {{"boxes", s.truths},
                  {"found", s.found},
                  {"recall", s.recall()},
                  {"precision", s.precision()},
                  {"ms_per_image", s.median_ms}};
    }
    return out;
  }
  const OcrCharset keys = load_ocr_keys(keys_path);
  for (const auto& [key, runner] : runners) {
    const OcrScore s = score_recogniser(*runner, set, keys, load);
    out[key] = {{"lines", s.lines},
                {"cer", s.cer()},
                {"exact", s.exact},
                {"line_accuracy", s.line_accuracy()},
                {"ms_per_image", s.median_ms}};
  }
  return out;
}

}  // namespace

int run_compress_onnx(const std::vector<std::string>& argv) {
  Args args(argv, {"recipe", "out", "calib", "eval", "windows", "keys"}, {"json"});
  if (args.positional().size() != 1 || !args.value("recipe") || !args.value("out"))
    throw UsageError{"compress of an ONNX model needs MODEL.onnx --recipe R --out OUT.onnx"};
  const std::string model_path = args.positional()[0], out_path = *args.value("out");
  const Recipe recipe = load_recipe(resolve_recipe(*args.value("recipe")));
  const OnnxModel model = read_onnx(model_path);
  OnnxRunner::check(model);  // an unsupported operator is refused before any work
  std::vector<OnnxInputs> calib;
  if (const auto dir = args.value("calib")) {
    const int64_t fallback = recipe.calibration.value("windows", int64_t(64));
    calib = ocr_calibration_inputs(model, read_ocr_set(*dir),
                                   size_t(args.int_or("windows", fallback)), image_loader());
  }
  const std::optional<OcrSet> eval_set =
      args.value("eval") ? std::optional(read_ocr_set(*args.value("eval"))) : std::nullopt;

  const SigintCancel sigint;
  OnnxCompression c;
  try {
    ProgressBar bar("compress");
    c = compress_onnx(model, recipe, calib, bar.callback(), &sigint.token());
  } catch (const Cancelled&) {
    std::fprintf(stderr, "mcw: compression cancelled; nothing written to %s\n", out_path.c_str());
    return 130;
  }
  ojson report;
  report["recipe"] = recipe.name;
  report["source_model"] = model_path;
  report["seconds"] = c.seconds;
  report["calibration_inputs"] = calib.size();
  report["parameters"] = c.parameters;
  report["bits_per_weight"] = double(c.storage_bits) / double(c.parameters);
  report["storage_bytes"] = c.storage_bits / 8;
  report["original_bytes"] = c.original_bits / 8;
  auto& layers = report["layers"] = ojson::array();
  for (const OnnxCompressedLayer& l : c.layers)
    layers.push_back(
        {{"name", l.layer.name},
         {"op", l.layer.op},
         {"algorithm", l.algorithm},
         {"scheme", l.scheme},
         {"bits_per_weight", double(l.storage_bits) / double(l.layer.parameters())},
         {"relative_error", l.relative_error},
         {"error_on", l.error_on_activations ? "calibration activations" : "weights"}});
  if (!c.activations.empty()) {
    auto& acts = report["activations"] = ojson::array();
    for (const OnnxActivationQuant& q : c.activations)
      acts.push_back({{"layer", q.layer},
                      {"bits", q.bits},
                      {"symmetric", q.symmetric},
                      {"scale", q.scale},
                      {"zero", q.zero},
                      {"min", q.min},
                      {"max", q.max}});
  }
  if (eval_set) {
    const std::string keys =
        args.value_or("keys", (fs::path(model_path).parent_path() / "ppocr_keys_v1.txt").string());
    report["eval"] = eval_all(model, c, *eval_set, keys);
  }
  const OnnxWriteReport written = write_compressed_onnx(model, c, out_path);
  report["file"] = {{"path", out_path}, {"bytes", written.bytes}, {"notes", written.notes}};
  const std::string json_path = fs::path(out_path).replace_extension(".json").string();
  std::ofstream(json_path) << report.dump(2) << "\n";

  if (args.flag("json")) {
    std::printf("%s\n", report.dump(2).c_str());
    return 0;
  }
  size_t w = 5;
  for (const OnnxCompressedLayer& l : c.layers) w = std::max(w, l.layer.name.size());
  std::printf("%-*s  %-44s %8s %12s\n", int(w), "layer", "scheme", "bits/w", "rel. error");
  for (const auto& l : layers)
    std::printf("%-*s  %-44s %8.3f %12.3e\n", int(w), l["name"].get<std::string>().c_str(),
                l["scheme"].get<std::string>().c_str(), l["bits_per_weight"].get<double>(),
                l["relative_error"].get<double>());
  std::printf("\nmodel         %s parameters, %.3f bits per weight, %s (as stored: %s)\n",
              human_count(c.parameters).c_str(), report["bits_per_weight"].get<double>(),
              human_bytes(c.storage_bits / 8).c_str(), human_bytes(c.original_bits / 8).c_str());
  if (!c.activations.empty())
    std::printf("activations   %zu layer inputs on per-tensor grids\n", c.activations.size());
  if (report.contains("eval")) {
    const ojson& e = report["eval"];
    if (e["original"].contains("cer"))
      std::printf("eval          CER %.2f %% -> %.2f %%, exact lines %.1f %% -> %.1f %%\n",
                  100 * e["original"]["cer"].get<double>(),
                  100 * e["compressed"]["cer"].get<double>(),
                  100 * e["original"]["line_accuracy"].get<double>(),
                  100 * e["compressed"]["line_accuracy"].get<double>());
    else
      std::printf("eval          recall %.1f %% -> %.1f %%, precision %.1f %% -> %.1f %%\n",
                  100 * e["original"]["recall"].get<double>(),
                  100 * e["compressed"]["recall"].get<double>(),
                  100 * e["original"]["precision"].get<double>(),
                  100 * e["compressed"]["precision"].get<double>());
    const bool lines = e["original"].contains("cer");
    std::printf(
        "packed        %s %.2f %%; ms per image %.1f (original) %.1f (decoded) %.1f "
        "(packed)\n",
        lines ? "CER" : "recall", 100 * e["packed"][lines ? "cer" : "recall"].get<double>(),
        e["original"]["ms_per_image"].get<double>(), e["compressed"]["ms_per_image"].get<double>(),
        e["packed"]["ms_per_image"].get<double>());
  }
  for (const std::string& n : written.notes) std::printf("note          %s\n", n.c_str());
  std::printf("wrote         %s (%s) and %s in %s\n", out_path.c_str(),
              human_bytes(written.bytes).c_str(), json_path.c_str(),
              human_duration(c.seconds).c_str());
  return 0;
}

}  // namespace mcw::cli
