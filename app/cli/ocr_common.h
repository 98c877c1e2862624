// What the OCR commands (ocr-lines, ocr-pages, eval and compress of ONNX models) share.
// Images are read and drawn with QtGui (the engine has no codecs): an application object for
// fonts and codecs without a display, and a loader of PNG/JPEG files into the engine's
// Image8. A build without QtGui (MCW_WITH_GUI=OFF) has neither, and says so in one line.
#pragma once
#include "engine/ocr/ocr_eval.h"

namespace mcw::cli {

// Creates the QGuiApplication (offscreen) once; an mcw::Error without QtGui.
void ensure_gui();
// Reads PNG/JPEG files as RGB; the loader creates the application on its first use.
ImageLoader image_loader();

// A score as text lines, or one JSON object with --json.
void print_ocr_score(const OcrScore& score, bool json);  // CER and exact lines
void print_det_score(const DetScore& score, bool json);  // box recall and precision

}  // namespace mcw::cli
