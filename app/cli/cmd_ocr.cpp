// OCR on the command line: `mcw ocr-lines` renders text lines as PNG images with their
// labels (QPainter into QImage, DejaVu Sans from fonts-dejavu-core), and `mcw eval` of an
// ONNX recogniser reads such a folder (any PNG/JPEG lines with a labels.tsv of file, tab,
// text) and scores the model: character error rate and exact lines. `mcw ocr-pages` and
// `mcw eval DET.onnx --pages DIR` do the same for a detector: pages of lines with their
// boxes, box recall and precision. Images are read and drawn with QtGui; the engine gets
// pixels.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "engine/core/error.h"
#include "engine/ocr/ocr_detect.h"
#include "engine/ocr/ocr_image.h"
#include "engine/ocr/ocr_text.h"
#include "engine/onnx/onnx_runner.h"

#ifdef MCW_HAVE_QT_GUI
#include <QFont>
#include <QFontMetrics>
#include <QGuiApplication>
#include <QImage>
#include <QPainter>
#endif

namespace mcw::cli {

namespace fs = std::filesystem;

const char* const kOcrPagesUsage =
    "usage: mcw ocr-pages --text FILE --out DIR [--count N]\n"
    "\n"
    "Renders N pages (default 20) of 640 x 480 pixels, each with up to six of FILE's lines\n"
    "(8 to 40 characters) in DejaVu Sans at 20 to 34 pixels, black on white, and writes\n"
    "DIR/boxes.tsv (file, x0, y0, x1, y1, text per line; the text's ink box): an evaluation\n"
    "set for `mcw eval DETECTOR.onnx --pages DIR`.\n";

const char* const kOcrLinesUsage =
    "usage: mcw ocr-lines --text FILE --out DIR [--count N] [--keys FILE]\n"
    "\n"
    "Renders the first N lines of FILE (8 to 60 characters, whitespace collapsed, only\n"
    "characters the recogniser's keys know) as black-on-white PNG images 64 pixels high in\n"
    "DejaVu Sans, and writes DIR/labels.tsv (file, tab, text) beside them: an evaluation set\n"
    "for `mcw eval MODEL.onnx --images DIR`. Defaults: 100 lines, the PP-OCR keys of\n"
    "assets/models/ppocr.\n";

namespace {

std::string default_keys() {
  return std::string(MCW_SOURCE_DIR) + "/assets/models/ppocr/ppocr_keys_v1.txt";
}

#ifdef MCW_HAVE_QT_GUI
// QtGui needs an application object for fonts; no display is needed.
void ensure_gui() {
  if (QGuiApplication::instance()) return;
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  static int argc = 1;
  static char name[] = "mcw";
  static char* argv[] = {name, nullptr};
  new QGuiApplication(argc, argv);
}

Image8 load_image(const std::string& path) {
  QImage q(QString::fromStdString(path));
  if (q.isNull()) throw Error(path, "not an image Qt can read (PNG or JPEG)");
  q = q.convertToFormat(QImage::Format_RGB888);
  Image8 img{q.width(), q.height(), 3, {}};
  img.pixels.resize(size_t(img.width * img.height * 3));
  for (int64_t y = 0; y < img.height; ++y)
    std::copy_n(q.constScanLine(int(y)), img.width * 3, img.pixels.begin() + y * img.width * 3);
  return img;
}
#endif

// FILE's lines, whitespace runs collapsed and ends trimmed, of min..max code points whose
// characters are all in `known`.
std::vector<std::string> text_lines(const std::string& text, size_t min, size_t max,
                                    const std::set<char32_t>& known) {
  std::istringstream lines(text);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(lines, line)) {
    std::string t;
    for (char ch : line) {
      const bool space = ch == ' ' || ch == '\t' || ch == '\r';
      if (space && (t.empty() || t.back() == ' ')) continue;
      t += space ? ' ' : ch;
    }
    while (!t.empty() && t.back() == ' ') t.pop_back();
    const std::u32string u = utf8_to_u32(t);
    if (u.size() < min || u.size() > max) continue;
    if (std::all_of(u.begin(), u.end(), [&](char32_t c) { return known.count(c); }))
      out.push_back(t);
  }
  return out;
}

std::set<char32_t> known_characters(const OcrCharset& keys) {
  std::set<char32_t> known;
  for (const std::string& l : keys.labels)
    if (const std::u32string u = utf8_to_u32(l); u.size() == 1) known.insert(u[0]);
  return known;
}

[[noreturn]] void no_gui() {
  throw Error("mcw",
              "this build has no QtGui (MCW_WITH_GUI=OFF): OCR images cannot be read or drawn");
}

// What both renderers take: --text FILE --out DIR [--count N] [--keys FILE].
struct RenderJob {
  std::string text_path, out;
  OcrCharset keys;
  int64_t count;
};
RenderJob render_job(const std::vector<std::string>& argv, const std::string& command,
                     int64_t default_count) {
  Args args(argv, {"text", "out", "count", "keys"}, {});
  const auto text = args.value("text"), out = args.value("out");
  if (!text || !out) throw UsageError{command + " needs --text FILE and --out DIR"};
  return {*text, *out, load_ocr_keys(args.value_or("keys", default_keys())),
          args.int_or("count", default_count)};
}

}  // namespace

int run_ocr_lines(const std::vector<std::string>& argv) {
  const auto [text, out, keys, count] = render_job(argv, "ocr-lines", 100);
#ifdef MCW_HAVE_QT_GUI
  ensure_gui();
  fs::create_directories(out);
  std::ofstream labels(fs::path(out) / "labels.tsv");
  QFont font(QStringLiteral("DejaVu Sans"));
  font.setPixelSize(40);
  const QFontMetrics metrics(font);
  int64_t n = 0;
  for (const std::string& t : text_lines(read_text_file(text), 8, 60, known_characters(keys))) {
    if (n >= count) break;
    const QString q = QString::fromStdString(t);
    QImage img(metrics.horizontalAdvance(q) + 16, 64, QImage::Format_RGB888);
    img.fill(Qt::white);
    QPainter p(&img);
    p.setFont(font);
    p.setPen(Qt::black);
    p.setRenderHint(QPainter::TextAntialiasing);
    p.drawText(QRect(8, 0, img.width() - 16, 64), Qt::AlignVCenter | Qt::AlignLeft, q);
    p.end();
    char name[32];
    std::snprintf(name, sizeof name, "line-%04lld.png", static_cast<long long>(n));
    if (!img.save(QString::fromStdString((fs::path(out) / name).string())))
      throw Error((fs::path(out) / name).string(), "cannot write the image");
    labels << name << '\t' << t << '\n';
    ++n;
  }
  if (!labels) throw Error((fs::path(out) / "labels.tsv").string(), "cannot write the labels");
  std::printf("%lld lines in %s\n", static_cast<long long>(n), out.c_str());
  return 0;
#else
  (void)count;
  no_gui();
#endif
}

int run_ocr_pages(const std::vector<std::string>& argv) {
  const auto [text, out, keys, count] = render_job(argv, "ocr-pages", 20);
#ifdef MCW_HAVE_QT_GUI
  ensure_gui();
  fs::create_directories(out);
  const std::vector<std::string> lines =
      text_lines(read_text_file(text), 8, 40, known_characters(keys));
  std::ofstream boxes(fs::path(out) / "boxes.tsv");
  size_t next = 0;
  for (int64_t page = 0; page < count && next < lines.size(); ++page) {
    QImage img(640, 480, QImage::Format_RGB888);
    img.fill(Qt::white);
    QPainter p(&img);
    p.setPen(Qt::black);
    p.setRenderHint(QPainter::TextAntialiasing);
    char name[32];
    std::snprintf(name, sizeof name, "page-%03lld.png", static_cast<long long>(page));
    int y = 20;
    for (int k = 0; k < 6 && next < lines.size(); ++k) {
      QFont font(QStringLiteral("DejaVu Sans"));
      font.setPixelSize(20 + int((page * 7 + k * 5) % 15));  // 20..34 pixels
      p.setFont(font);
      const QFontMetrics m(font);
      const QString q = QString::fromStdString(lines[next]);
      const int x = 16 + int((page * 37 + k * 53) % 120);
      if (x + m.horizontalAdvance(q) > 630 || y + m.height() > 470) break;
      const QRect ink = m.tightBoundingRect(q).translated(x, y + m.ascent());
      p.drawText(x, y + m.ascent(), q);
      boxes << name << '\t' << ink.left() << '\t' << ink.top() << '\t' << ink.right() + 1 << '\t'
            << ink.bottom() + 1 << '\t' << lines[next] << '\n';
      ++next;
      y += m.height() + 18 + int((page + k) % 3) * 12;
    }
    p.end();
    if (!img.save(QString::fromStdString((fs::path(out) / name).string())))
      throw Error((fs::path(out) / name).string(), "cannot write the image");
  }
  if (!boxes) throw Error((fs::path(out) / "boxes.tsv").string(), "cannot write the boxes");
  std::printf("%zu lines on pages in %s\n", next, out.c_str());
  return 0;
#else
  (void)count;
  no_gui();
#endif
}

namespace {

// `mcw eval DETECTOR.onnx --pages DIR`: box recall and precision of a detector.
int run_det_eval(const Args& args, const std::string& model_path, const std::string& dir) {
  const OnnxModel model = read_onnx(model_path);
  const OnnxRunner runner(model);
  const std::string tsv = (fs::path(dir) / "boxes.tsv").string();
  std::map<std::string, std::vector<OcrBox>> truth;
  std::istringstream in(read_text_file(tsv));
  std::string line;
  for (int64_t row = 1; std::getline(in, line); ++row) {
    if (line.empty()) continue;
    std::istringstream f(line);
    std::string file;
    OcrBox b;
    if (!std::getline(f, file, '\t') || !(f >> b.x0 >> b.y0 >> b.x1 >> b.y1))
      throw Error(tsv, "line " + std::to_string(row) + " is not file, x0, y0, x1, y1, text");
    truth[file].push_back(b);
  }
  DetScore score;
#ifdef MCW_HAVE_QT_GUI
  ensure_gui();
  for (const auto& [file, boxes] : truth) {
    const DetInput d = ocr_page_input(load_image((fs::path(dir) / file).string()));
    const auto out = runner.run({{model.graph.inputs[0].name, d.x}});
    const OnnxValue& prob = out.begin()->second;
    if (prob.shape.size() != 4 || !prob.is_float)
      throw Error(model_path, "the output is not a [1, 1, H, W] map");
    const std::vector<OcrBox> got =
        db_boxes(prob.f.data(), prob.shape[2], prob.shape[3], d.scale_x, d.scale_y);
    score.add(boxes, got);
    if (args.flag("show"))
      for (const OcrBox& b : got)
        std::printf("%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.3f\n", file.c_str(), b.x0, b.y0, b.x1, b.y1,
                    b.score);
  }
#else
  no_gui();
#endif
  if (args.flag("json"))
    std::printf("{\"boxes\": %lld, \"found\": %lld, \"recall\": %.6f, \"precision\": %.6f}\n",
                static_cast<long long>(score.truths), static_cast<long long>(score.found),
                score.recall(), score.precision());
  else
    std::printf("boxes        %lld (found %lld)\nrecall       %.1f %%\nprecision    %.1f %%\n",
                static_cast<long long>(score.truths), static_cast<long long>(score.found),
                100 * score.recall(), 100 * score.precision());
  return 0;
}

}  // namespace

// `mcw eval MODEL.onnx --images DIR`: CER and exact lines of a recogniser.
int run_ocr_eval(const std::vector<std::string>& argv) {
  Args args(argv, {"images", "pages", "keys", "max-lines"}, {"json", "show"});
  const auto dir = args.value("images");
  if (args.positional().size() == 1 && args.value("pages"))
    return run_det_eval(args, args.positional()[0], *args.value("pages"));
  if (args.positional().size() != 1 || !dir)
    throw UsageError{
        "eval of an ONNX model needs --images DIR (a recogniser) or --pages DIR (a detector)"};
  const std::string model_path = args.positional()[0];
  const std::string keys_path =
      args.value_or("keys", (fs::path(model_path).parent_path() / "ppocr_keys_v1.txt").string());
  const OcrCharset keys = load_ocr_keys(keys_path);
  const OnnxModel model = read_onnx(model_path);
  const OnnxRunner runner(model);
  if (model.graph.inputs.empty()) throw Error(model_path, "the graph has no input");
  const std::string tsv = (fs::path(*dir) / "labels.tsv").string();
  std::istringstream labels(read_text_file(tsv));
  const int64_t max_lines = args.int_or("max-lines", 1 << 30);
  OcrScore score;
  std::string line;
#ifdef MCW_HAVE_QT_GUI
  ensure_gui();
  int64_t row = 0;
  while (score.lines < max_lines && std::getline(labels, line)) {
    ++row;
    if (line.empty()) continue;
    const size_t tab = line.find('\t');
    if (tab == std::string::npos)
      throw Error(tsv, "line " + std::to_string(row) + " has no tab (file, tab, text)");
    const std::string file = line.substr(0, tab), truth = line.substr(tab + 1);
    const OnnxValue x = ocr_line_input(load_image((fs::path(*dir) / file).string()));
    const auto out = runner.run({{model.graph.inputs[0].name, x}});
    const OnnxValue& y = out.begin()->second;
    if (y.shape.size() != 3 || !y.is_float)
      throw Error(model_path, "the output is not [1, T, classes] probabilities");
    const std::string got = ctc_greedy_decode(y.f.data(), y.shape[1], y.shape[2], keys);
    score.add(truth, got);
    if (args.flag("show")) std::printf("%s\t%s\t%s\n", file.c_str(), truth.c_str(), got.c_str());
  }
#else
  (void)max_lines;
  no_gui();
#endif
  if (args.flag("json"))
    std::printf("{\"lines\": %lld, \"cer\": %.6f, \"exact\": %lld, \"line_accuracy\": %.6f}\n",
                static_cast<long long>(score.lines), score.cer(),
                static_cast<long long>(score.exact), score.line_accuracy());
  else
    std::printf(
        "lines        %lld\nCER          %.2f %% (%lld errors / %lld characters)\nexact lines  "
        "%lld (%.1f %%)\n",
        static_cast<long long>(score.lines), 100 * score.cer(),
        static_cast<long long>(score.errors), static_cast<long long>(score.chars),
        static_cast<long long>(score.exact), 100 * score.line_accuracy());
  return 0;
}

}  // namespace mcw::cli
