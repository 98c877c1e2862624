// Compression options for tests: calibration windows × tokens, the rest defaults.
#pragma once
#include "engine/compress/compress_llama.h"

namespace mcw::test {

inline CompressOptions calib_options(int64_t windows, int64_t window) {
  CompressOptions o;
  o.calib_windows = windows, o.calib_window = window;
  return o;
}

}  // namespace mcw::test
