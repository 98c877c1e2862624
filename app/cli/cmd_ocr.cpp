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
#include "app/cli/ocr_common.h"
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
    "usage: mcw ocr-pages --text FILE --out DIR [--count N] [--skip N]\n"
    "\n"
    "Renders N pages (default 20) of 640 x 480 pixels, each with up to six of FILE's lines\n"
    "(8 to 40 characters) in DejaVu Sans at 20 to 34 pixels, black on white, and writes\n"
    "DIR/boxes.tsv (file, x0, y0, x1, y1, text per line; the text's ink box): an evaluation\n"
    "set for `mcw eval DETECTOR.onnx --pages DIR`. --skip N starts after FILE's first N\n"
    "usable lines.\n";

const char* const kOcrLinesUsage =
    "usage: mcw ocr-lines --text FILE --out DIR [--count N] [--skip N] [--keys FILE]\n"
    "\n"
    "Renders the first N lines of FILE (8 to 60 characters, whitespace collapsed, only\n"
    "characters the recogniser's keys know) as black-on-white PNG images 64 pixels high in\n"
    "DejaVu Sans, and writes DIR/labels.tsv (file, tab, text) beside them: an evaluation set\n"
    "for `mcw eval MODEL.onnx --images DIR`. Defaults: 100 lines, the PP-OCR keys of\n"
    "assets/models/ppocr. --skip N starts after the first N usable lines (a calibration\n"
    "set apart from the evaluation set).\n";

namespace {

std::string default_keys() {
  return std::string(MCW_SOURCE_DIR) + "/assets/models/ppocr/ppocr_keys_v1.txt";
}

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

// What both renderers take: --text FILE --out DIR [--count N] [--skip N] [--keys FILE], and
// FILE's usable lines of min..max characters after the first `--skip` of them.
struct RenderJob {
  std::string out;
  std::vector<std::string> lines;
  int64_t count;
};
RenderJob render_job(const std::vector<std::string>& argv, const std::string& command,
                     int64_t default_count, size_t min, size_t max) {
  Args args(argv, {"text", "out", "count", "keys", "skip"}, {});
  const auto text = args.value("text"), out = args.value("out");
  if (!text || !out) throw UsageError{command + " needs --text FILE and --out DIR"};
  const OcrCharset keys = load_ocr_keys(args.value_or("keys", default_keys()));
  std::vector<std::string> lines =
      text_lines(read_text_file(*text), min, max, known_characters(keys));
  lines.erase(lines.begin(),
              lines.begin() + int64_t(std::min(lines.size(), size_t(args.int_or("skip", 0)))));
  return {*out, std::move(lines), args.int_or("count", default_count)};
}

#ifdef MCW_HAVE_QT_GUI
// Black text on white renders grey (r = g = b), so an 8-bit grey file keeps every pixel at a
// third of the size.
void save_grey(const QImage& img, const std::string& dir, const char* name) {
  const std::string path = (fs::path(dir) / name).string();
  if (!img.convertToFormat(QImage::Format_Grayscale8).save(QString::fromStdString(path)))
    throw Error(path, "cannot write the image");
}
#endif

}  // namespace

int run_ocr_lines(const std::vector<std::string>& argv) {
  const auto [out, lines, count] = render_job(argv, "ocr-lines", 100, 8, 60);
#ifdef MCW_HAVE_QT_GUI
  ensure_gui();
  fs::create_directories(out);
  std::ofstream labels(fs::path(out) / "labels.tsv");
  QFont font(QStringLiteral("DejaVu Sans"));
  font.setPixelSize(40);
  const QFontMetrics metrics(font);
  int64_t n = 0;
  for (const std::string& t : lines) {
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
    save_grey(img, out, name);
    labels << name << '\t' << t << '\n';
    ++n;
  }
  if (!labels) throw Error((fs::path(out) / "labels.tsv").string(), "cannot write the labels");
  std::printf("%lld lines in %s\n", static_cast<long long>(n), out.c_str());
  return 0;
#else
  (void)count;
  ensure_gui();  // says that this build has no QtGui
  return 1;
#endif
}

int run_ocr_pages(const std::vector<std::string>& argv) {
  const auto [out, lines, count] = render_job(argv, "ocr-pages", 20, 8, 40);
#ifdef MCW_HAVE_QT_GUI
  ensure_gui();
  fs::create_directories(out);
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
    save_grey(img, out, name);
  }
  if (!boxes) throw Error((fs::path(out) / "boxes.tsv").string(), "cannot write the boxes");
  std::printf("%zu lines on pages in %s\n", next, out.c_str());
  return 0;
#else
  (void)count;
  ensure_gui();  // says that this build has no QtGui
  return 1;
#endif
}

// `mcw eval MODEL.onnx --images DIR` (a recogniser: CER and exact lines) or
// `--pages DIR` (a detector: box recall and precision).
int run_ocr_eval(const std::vector<std::string>& argv) {
  Args args(argv, {"images", "pages", "keys", "max-lines"}, {"json", "show"});
  const auto dir = args.value("images") ? args.value("images") : args.value("pages");
  if (args.positional().size() != 1 || !dir)
    throw UsageError{
        "eval of an ONNX model needs --images DIR (a recogniser) or --pages DIR (a detector)"};
  const std::string model_path = args.positional()[0];
  const OnnxModel model = read_onnx(model_path);
  const OnnxRunner runner(model);
  const OcrSet set = read_ocr_set(*dir);
  const size_t max = size_t(args.int_or("max-lines", 1 << 30));
  const bool show = args.flag("show"), json = args.flag("json");
  if (set.kind == OcrSet::Pages) {
    const DetScore score =
        score_detector(runner, set, image_loader(), max,
                       [&](const OcrPageSample& p, const std::vector<OcrBox>& got) {
                         if (show)
                           for (const OcrBox& b : got)
                             std::printf("%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.3f\n", p.file.c_str(), b.x0,
                                         b.y0, b.x1, b.y1, b.score);
                       });
    print_det_score(score, json);
    return 0;
  }
  const std::string keys_path =
      args.value_or("keys", (fs::path(model_path).parent_path() / "ppocr_keys_v1.txt").string());
  const OcrScore score =
      score_recogniser(runner, set, load_ocr_keys(keys_path), image_loader(), max,
                       [&](const OcrLineSample& l, const std::string& got) {
                         if (show)
                           std::printf("%s\t%s\t%s\n", l.file.c_str(), l.text.c_str(), got.c_str());
                       });
  print_ocr_score(score, json);
  return 0;
}

}  // namespace mcw::cli
