// `mcw sensitivity MODEL.onnx --eval SET`: each Conv/MatMul/Gemm layer compressed alone at
// each setting, measured on the set's first N images against the original graph
// (engine/search/onnx_sensitivity.h), printed as a layer x setting table.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "app/cli/ocr_common.h"
#include "app/cli/progress_bar.h"
#include "engine/core/error.h"
#include "engine/search/onnx_sensitivity.h"

namespace mcw::cli {

int run_sensitivity_onnx(const std::vector<std::string>& argv) {
  Args args(argv, {"eval", "settings", "lines"}, {"json"});
  if (args.positional().size() != 1 || !args.value("eval"))
    throw UsageError{"sensitivity of an ONNX model needs MODEL.onnx --eval SET"};
  const OnnxModel model = read_onnx(args.positional()[0]);
  OnnxRunner::check(model);  // an unsupported operator is refused before any work
  std::vector<ScanSetting> settings;
  std::istringstream list(args.value_or("settings", "w8,w4,s50"));
  for (std::string name; std::getline(list, name, ',');)
    settings.push_back(scan_setting_from_name(name));
  const std::vector<OnnxInputs> inputs = ocr_calibration_inputs(
      model, read_ocr_set(*args.value("eval")), size_t(args.int_or("lines", 16)), image_loader());
  const SigintCancel sigint;
  OnnxSensitivity s;
  try {
    ProgressBar bar("sensitivity");
    s = onnx_sensitivity(model, settings, inputs, bar.callback(), &sigint.token());
  } catch (const Cancelled&) {
    std::fprintf(stderr, "mcw: sensitivity scan cancelled\n");
    return 130;
  }
  const char* measure = s.kl ? "kl" : "relative_error";
  if (args.flag("json")) {
    nlohmann::ordered_json j = {
        {"model", model.path}, {"measure", measure}, {"inputs", inputs.size()}};
    auto& rows = j["layers"] = nlohmann::ordered_json::array();
    for (size_t l = 0; l < s.layers.size(); ++l) {
      nlohmann::ordered_json row = {{"name", s.layers[l].name},
                                    {"op", s.layers[l].op},
                                    {"parameters", s.layers[l].parameters()}};
      for (size_t k = 0; k < settings.size(); ++k) row[settings[k].name] = s.at(l, k);
      rows.push_back(row);
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%s of the output to the original's on %zu inputs (%s)\n\n",
              s.kl ? "KL divergence (nats per row)" : "relative squared error", inputs.size(),
              args.value("eval")->c_str());
  size_t w = 5;
  for (const OnnxLayer& l : s.layers) w = std::max(w, l.name.size());
  std::printf("%-*s  %-13s %9s", int(w), "layer", "op", "params");
  for (const ScanSetting& st : settings) std::printf(" %10s", st.name.c_str());
  std::printf("\n");
  for (size_t l = 0; l < s.layers.size(); ++l) {
    std::printf("%-*s  %-13s %9s", int(w), s.layers[l].name.c_str(), s.layers[l].op.c_str(),
                human_count(uint64_t(s.layers[l].parameters())).c_str());
    for (size_t k = 0; k < settings.size(); ++k) std::printf(" %10.3g", s.at(l, k));
    std::printf("\n");
  }
  return 0;
}

}  // namespace mcw::cli
