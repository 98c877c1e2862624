#include "app/image_io/qt_image_loader.h"

#include <QImage>
#include <algorithm>

#include "engine/core/error.h"

namespace mcw {

Image8 qt_load_image(const std::string& path) {
  QImage q(QString::fromStdString(path));
  if (q.isNull()) throw Error(path, "not an image Qt can read (PNG or JPEG)");
  q = q.convertToFormat(QImage::Format_RGB888);
  Image8 img{q.width(), q.height(), 3, {}};
  img.pixels.resize(size_t(img.width * img.height * 3));
  for (int64_t y = 0; y < img.height; ++y)
    std::copy_n(q.constScanLine(int(y)), img.width * 3, img.pixels.begin() + y * img.width * 3);
  return img;
}

}  // namespace mcw
