// OCR evaluation sets and scoring a model on them. A set is a folder: text lines with a
// labels.tsv (file, tab, text) for a recogniser, or pages with a boxes.tsv (file, x0, y0,
// x1, y1, text per line) for a detector; `mcw ocr-lines` and `mcw ocr-pages` write them.
// Images are decoded by the caller's loader (the engine has no image codecs; the app reads
// PNG and JPEG with QtGui).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/ocr/ocr_detect.h"
#include "engine/ocr/ocr_text.h"
#include "engine/onnx/onnx_calibrate.h"

namespace mcw {

using ImageLoader = std::function<Image8(const std::string& path)>;

struct OcrLineSample {
  std::string file, text;  // file relative to the set's folder
};
struct OcrPageSample {
  std::string file;
  std::vector<OcrBox> boxes;
};
struct OcrSet {
  enum Kind { Lines, Pages } kind = Lines;
  std::string dir;
  std::vector<OcrLineSample> lines;  // Lines
  std::vector<OcrPageSample> pages;  // Pages, in file order
  size_t size() const { return kind == Lines ? lines.size() : pages.size(); }
};

// The set in `dir`, by the file it holds (labels.tsv, else boxes.tsv); an mcw::Error
// naming the file and line for a malformed row, or the folder when it holds neither.
OcrSet read_ocr_set(const std::string& dir);

// The model's input for sample k (a line, or a page), and for pages the page-pixel scales.
DetInput ocr_sample_input(const OcrSet& set, size_t k, const ImageLoader& load);

// The first `count` samples as the graph's inputs (its first input), for calibration.
std::vector<OnnxInputs> ocr_calibration_inputs(const OnnxModel& model, const OcrSet& set,
                                               size_t count, const ImageLoader& load);

// Runs the graph on the first `max` samples: each(k, its input, the graph's first output,
// the seconds the run took).
using OcrOutputFn =
    std::function<void(size_t k, const DetInput& in, const OnnxValue& y, double seconds)>;
void run_ocr_set(const OnnxRunner& runner, const OcrSet& set, const ImageLoader& load, size_t max,
                 const OcrOutputFn& each);
// A recogniser's output as text (greedy CTC over `keys`); a detector's as boxes in page
// pixels. Each checks the output's shape (mcw::Error naming the model otherwise).
std::string decode_line(const OnnxModel& model, const OnnxValue& y, const OcrCharset& keys);
std::vector<OcrBox> page_boxes(const OnnxModel& model, const OnnxValue& y, const DetInput& in);

// A recogniser's CER and exact lines over the first `max` lines, greedy CTC over `keys`;
// `each` sees every line's reference and hypothesis.
OcrScore score_recogniser(
    const OnnxRunner& runner, const OcrSet& set, const OcrCharset& keys, const ImageLoader& load,
    size_t max = SIZE_MAX,
    const std::function<void(const OcrLineSample&, const std::string&)>& each = {});

// A detector's box recall and precision; `each` sees every page's found boxes.
DetScore score_detector(
    const OnnxRunner& runner, const OcrSet& set, const ImageLoader& load, size_t max = SIZE_MAX,
    const std::function<void(const OcrPageSample&, const std::vector<OcrBox>&)>& each = {});

}  // namespace mcw
