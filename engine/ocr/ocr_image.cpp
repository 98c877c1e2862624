#include "engine/ocr/ocr_image.h"

#include <algorithm>
#include <cmath>

#include "engine/core/error.h"

namespace mcw {

void check_image(const Image8& img) {
  if (img.width <= 0 || img.height <= 0 || (img.channels != 1 && img.channels != 3) ||
      img.pixels.size() != size_t(img.width * img.height * img.channels))
    throw Error("ocr", "an empty or inconsistent image");
}

std::vector<float> resize_bilinear(const Image8& img, int64_t w, int64_t h) {
  check_image(img);
  const double sx = double(img.width) / double(w), sy = double(img.height) / double(h);
  auto tap = [](double f, int64_t n, int64_t& i0, int64_t& i1, double& t) {
    f = std::max(0.0, f);
    i0 = std::min(int64_t(f), n - 1), i1 = std::min(i0 + 1, n - 1), t = f - double(i0);
    if (i0 == n - 1) t = 0;
  };
  std::vector<float> out(size_t(3 * h * w));
  for (int64_t y = 0; y < h; ++y) {
    int64_t y0, y1;
    double ty;
    tap((double(y) + 0.5) * sy - 0.5, img.height, y0, y1, ty);
    for (int64_t x = 0; x < w; ++x) {
      int64_t x0, x1;
      double tx;
      tap((double(x) + 0.5) * sx - 0.5, img.width, x0, x1, tx);
      for (int64_t c = 0; c < 3; ++c) {
        const int64_t ch = img.channels == 1 ? 0 : c;
        auto px = [&](int64_t yy, int64_t xx) {
          return double(img.pixels[size_t((yy * img.width + xx) * img.channels + ch)]);
        };
        out[size_t((c * h + y) * w + x)] =
            float((1 - ty) * ((1 - tx) * px(y0, x0) + tx * px(y0, x1)) +
                  ty * ((1 - tx) * px(y1, x0) + tx * px(y1, x1)));
      }
    }
  }
  return out;
}

OnnxValue ocr_line_input(const Image8& img, int64_t height, int64_t min_width) {
  check_image(img);
  const double ratio = double(img.width) / double(img.height);
  const int64_t canvas = std::max(
      min_width, int64_t(double(height) * std::max(ratio, double(min_width) / double(height))));
  const int64_t w = std::min(canvas, int64_t(std::ceil(double(height) * ratio)));
  const std::vector<float> v = resize_bilinear(img, w, height);
  OnnxValue out = OnnxValue::floats({1, 3, height, canvas});  // zeros right of the line
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < w; ++x)
        out.f[size_t((c * height + y) * canvas + x)] =
            float((double(v[size_t((c * height + y) * w + x)]) / 255.0 - 0.5) / 0.5);
  return out;
}

}  // namespace mcw
