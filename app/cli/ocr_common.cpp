#include "app/cli/ocr_common.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "engine/core/error.h"

#ifdef MCW_HAVE_QT_GUI
#include <sys/stat.h>
#include <unistd.h>

#include <QGuiApplication>

#include "app/image_io/qt_image_loader.h"
#endif

namespace mcw::cli {

#ifdef MCW_HAVE_QT_GUI
void ensure_gui() {
  if (QGuiApplication::instance()) return;
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  if (qEnvironmentVariableIsEmpty("XDG_RUNTIME_DIR")) {  // Qt warns on every run without one
    const std::string dir = "/tmp/runtime-" + std::to_string(getuid());
    ::mkdir(dir.c_str(), 0700);
    qputenv("XDG_RUNTIME_DIR", QByteArray::fromStdString(dir));
  }
  static int argc = 1;
  static char name[] = "mcw";
  static char* argv[] = {name, nullptr};
  new QGuiApplication(argc, argv);
}

ImageLoader image_loader() {
  return [](const std::string& path) {
    ensure_gui();
    return qt_load_image(path);
  };
}
#else
[[noreturn]] static void no_gui() {
  throw Error("mcw",
              "this build has no QtGui (MCW_WITH_GUI=OFF): OCR images cannot be read or drawn");
}
void ensure_gui() { no_gui(); }
ImageLoader image_loader() {
  return [](const std::string&) -> Image8 { no_gui(); };
}
#endif

void print_det_score(const DetScore& score, bool json) {
  if (json)
    std::printf("{\"boxes\": %lld, \"found\": %lld, \"recall\": %.6f, \"precision\": %.6f}\n",
                static_cast<long long>(score.truths), static_cast<long long>(score.found),
                score.recall(), score.precision());
  else
    std::printf("boxes        %lld (found %lld)\nrecall       %.1f %%\nprecision    %.1f %%\n",
                static_cast<long long>(score.truths), static_cast<long long>(score.found),
                100 * score.recall(), 100 * score.precision());
}

void print_ocr_score(const OcrScore& score, bool json) {
  if (json)
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
}

}  // namespace mcw::cli
