#include "engine/ocr/ocr_eval.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>

#include "engine/core/error.h"
#include "engine/core/text_file.h"
#include "engine/eval/latency.h"

namespace mcw {

namespace fs = std::filesystem;

namespace {

std::vector<OcrLineSample> read_labels(const std::string& tsv) {
  std::istringstream in(read_text_file(tsv));
  std::vector<OcrLineSample> out;
  std::string line;
  for (int64_t row = 1; std::getline(in, line); ++row) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // a file saved with CRLF
    if (line.empty()) continue;
    const size_t tab = line.find('\t');
    if (tab == std::string::npos)
      throw Error(tsv, "line " + std::to_string(row) + " has no tab (file, tab, text)");
    out.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  return out;
}

std::vector<OcrPageSample> read_boxes(const std::string& tsv) {
  std::map<std::string, std::vector<OcrBox>> pages;
  std::istringstream in(read_text_file(tsv));
  std::string line;
  for (int64_t row = 1; std::getline(in, line); ++row) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::istringstream f(line);
    std::string file;
    OcrBox b;
    if (!std::getline(f, file, '\t') || !(f >> b.x0 >> b.y0 >> b.x1 >> b.y1))
      throw Error(tsv, "line " + std::to_string(row) + " is not file, x0, y0, x1, y1, text");
    pages[file].push_back(b);
  }
  std::vector<OcrPageSample> out;
  for (auto& [file, boxes] : pages) out.push_back({file, std::move(boxes)});
  return out;
}

}  // namespace

OcrSet read_ocr_set(const std::string& dir) {
  OcrSet s;
  s.dir = dir;
  if (fs::exists(fs::path(dir) / "labels.tsv")) {
    s.lines = read_labels((fs::path(dir) / "labels.tsv").string());
  } else if (fs::exists(fs::path(dir) / "boxes.tsv")) {
    s.kind = OcrSet::Pages;
    s.pages = read_boxes((fs::path(dir) / "boxes.tsv").string());
  } else {
    throw Error(dir, "not an OCR set: no labels.tsv (text lines) or boxes.tsv (pages)");
  }
  if (s.size() == 0) throw Error(dir, "the OCR set has no samples");
  return s;
}

DetInput ocr_sample_input(const OcrSet& set, size_t k, const ImageLoader& load) {
  if (set.kind == OcrSet::Lines)
    return {ocr_line_input(load((fs::path(set.dir) / set.lines[k].file).string())), 1, 1};
  return ocr_page_input(load((fs::path(set.dir) / set.pages[k].file).string()));
}

std::vector<OnnxInputs> ocr_calibration_inputs(const OnnxModel& model, const OcrSet& set,
                                               size_t count, const ImageLoader& load) {
  if (model.graph.inputs.empty()) throw Error(model.path, "the graph has no input");
  std::vector<OnnxInputs> out;
  for (size_t k = 0; k < std::min(count, set.size()); ++k)
    out.push_back({{model.graph.inputs[0].name, ocr_sample_input(set, k, load).x}});
  return out;
}

void run_ocr_set(const OnnxRunner& runner, const OcrSet& set, const ImageLoader& load, size_t max,
                 const OcrOutputFn& each) {
  const OnnxModel& model = runner.model();
  if (model.graph.inputs.empty()) throw Error(model.path, "the graph has no input");
  if (model.graph.outputs.empty()) throw Error(model.path, "the graph has no output");
  for (size_t k = 0; k < std::min(max, set.size()); ++k) {
    const DetInput in = ocr_sample_input(set, k, load);
    const auto t0 = std::chrono::steady_clock::now();
    const OnnxValue y =
        runner.run({{model.graph.inputs[0].name, in.x}}).at(model.graph.outputs[0].name);
    each(k, in, y, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

std::string decode_line(const OnnxModel& model, const OnnxValue& y, const OcrCharset& keys) {
  if (y.shape.size() != 3 || !y.is_float)
    throw Error(model.path, "the output is not [1, T, classes] probabilities");
  return ctc_greedy_decode(y.f.data(), y.shape[1], y.shape[2], keys);
}

std::vector<OcrBox> page_boxes(const OnnxModel& model, const OnnxValue& y, const DetInput& in) {
  if (y.shape.size() != 4 || !y.is_float)
    throw Error(model.path, "the output is not a [1, 1, H, W] map");
  return db_boxes(y.f.data(), y.shape[2], y.shape[3], in.scale_x, in.scale_y);
}

OcrScore score_recogniser(
    const OnnxRunner& runner, const OcrSet& set, const OcrCharset& keys, const ImageLoader& load,
    size_t max, const std::function<void(const OcrLineSample&, const std::string&)>& each) {
  if (set.kind != OcrSet::Lines) throw Error(set.dir, "a recogniser is scored on text lines");
  OcrScore score;
  std::vector<double> ms;
  run_ocr_set(runner, set, load, max,
              [&](size_t k, const DetInput&, const OnnxValue& y, double seconds) {
                ms.push_back(1e3 * seconds);
                const std::string got = decode_line(runner.model(), y, keys);
                score.add(set.lines[k].text, got);
                if (each) each(set.lines[k], got);
              });
  if (!ms.empty()) score.median_ms = median(ms);
  return score;
}

DetScore score_detector(
    const OnnxRunner& runner, const OcrSet& set, const ImageLoader& load, size_t max,
    const std::function<void(const OcrPageSample&, const std::vector<OcrBox>&)>& each) {
  if (set.kind != OcrSet::Pages) throw Error(set.dir, "a detector is scored on pages");
  DetScore score;
  std::vector<double> ms;
  run_ocr_set(runner, set, load, max,
              [&](size_t k, const DetInput& in, const OnnxValue& y, double seconds) {
                ms.push_back(1e3 * seconds);
                const std::vector<OcrBox> got = page_boxes(runner.model(), y, in);
                score.add(set.pages[k].boxes, got);
                if (each) each(set.pages[k], got);
              });
  if (!ms.empty()) score.median_ms = median(ms);
  return score;
}

}  // namespace mcw
