// Image files for the engine (which has no codecs), decoded by QtGui: PNG and JPEG as RGB
// Image8. Shared by the command line and the studio; needs a Qt application object to exist
// (the studio's, or the one the command line makes offscreen).
#pragma once
#include "engine/ocr/ocr_eval.h"  // ImageLoader, Image8

namespace mcw {

// mcw::Error naming the file when Qt cannot read it.
Image8 qt_load_image(const std::string& path);

}  // namespace mcw
