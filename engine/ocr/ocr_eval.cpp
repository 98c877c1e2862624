#include "engine/ocr/ocr_eval.h"

#include <filesystem>
#include <map>
#include <sstream>

#include "engine/core/error.h"
#include "engine/core/text_file.h"

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

OcrScore score_recogniser(
    const OnnxRunner& runner, const OcrSet& set, const OcrCharset& keys, const ImageLoader& load,
    size_t max, const std::function<void(const OcrLineSample&, const std::string&)>& each) {
  const OnnxModel& model = runner.model();
  if (set.kind != OcrSet::Lines) throw Error(set.dir, "a recogniser is scored on text lines");
  if (model.graph.inputs.empty()) throw Error(model.path, "the graph has no input");
  OcrScore score;
  for (size_t k = 0; k < std::min(max, set.lines.size()); ++k) {
    const auto out = runner.run({{model.graph.inputs[0].name, ocr_sample_input(set, k, load).x}});
    const OnnxValue& y = out.begin()->second;
    if (y.shape.size() != 3 || !y.is_float)
      throw Error(model.path, "the output is not [1, T, classes] probabilities");
    const std::string got = ctc_greedy_decode(y.f.data(), y.shape[1], y.shape[2], keys);
    score.add(set.lines[k].text, got);
    if (each) each(set.lines[k], got);
  }
  return score;
}

DetScore score_detector(
    const OnnxRunner& runner, const OcrSet& set, const ImageLoader& load, size_t max,
    const std::function<void(const OcrPageSample&, const std::vector<OcrBox>&)>& each) {
  const OnnxModel& model = runner.model();
  if (set.kind != OcrSet::Pages) throw Error(set.dir, "a detector is scored on pages");
  if (model.graph.inputs.empty()) throw Error(model.path, "the graph has no input");
  DetScore score;
  for (size_t k = 0; k < std::min(max, set.pages.size()); ++k) {
    const DetInput d = ocr_sample_input(set, k, load);
    const auto out = runner.run({{model.graph.inputs[0].name, d.x}});
    const OnnxValue& prob = out.begin()->second;
    if (prob.shape.size() != 4 || !prob.is_float)
      throw Error(model.path, "the output is not a [1, 1, H, W] map");
    const std::vector<OcrBox> got =
        db_boxes(prob.f.data(), prob.shape[2], prob.shape[3], d.scale_x, d.scale_y);
    score.add(set.pages[k].boxes, got);
    if (each) each(set.pages[k], got);
  }
  return score;
}

}  // namespace mcw
