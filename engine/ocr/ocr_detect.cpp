#include "engine/ocr/ocr_detect.h"

#include <algorithm>
#include <cmath>

#include "engine/core/error.h"

namespace mcw {

DetInput ocr_page_input(const Image8& page, int64_t max_side) {
  check_image(page);
  // DetResizeForTest (limit_type max): shrink so the longest side is at most max_side, then
  // round both sides to multiples of 32 (at least 32).
  const double r = std::min(1.0, double(max_side) / double(std::max(page.width, page.height)));
  auto side = [](double v) { return std::max<int64_t>(32, int64_t(std::lround(v / 32.0)) * 32); };
  const int64_t H = side(double(page.height) * r), W = side(double(page.width) * r);
  DetInput d;
  d.scale_x = double(page.width) / double(W), d.scale_y = double(page.height) / double(H);
  d.x = OnnxValue::floats({1, 3, H, W}, resize_bilinear(page, W, H));
  const double mean[3] = {0.485, 0.456, 0.406}, stdv[3] = {0.229, 0.224, 0.225};
  for (int64_t c = 0; c < 3; ++c)
    for (float *p = d.x.f.data() + c * H * W, *e = p + H * W; p < e; ++p)
      *p = float((double(*p) / 255.0 - mean[c]) / stdv[c]);
  return d;
}

std::vector<OcrBox> db_boxes(const float* prob, int64_t H, int64_t W, double scale_x,
                             double scale_y, const DbOptions& o) {
  std::vector<int32_t> label(size_t(H * W), -1);
  std::vector<OcrBox> boxes;
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < H * W; ++start) {
    if (prob[start] <= o.threshold || label[size_t(start)] >= 0) continue;
    // One 4-connected region of the binary map: its bounding box and mean probability.
    int64_t x0 = W, y0 = H, x1 = -1, y1 = -1;
    double sum = 0;
    int64_t n = 0;
    stack.assign(1, start);
    label[size_t(start)] = int32_t(boxes.size());
    while (!stack.empty()) {
      const int64_t p = stack.back();
      stack.pop_back();
      const int64_t y = p / W, x = p % W;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      sum += prob[p], ++n;
      for (const int64_t q : {p - 1, p + 1, p - W, p + W}) {
        if (q < 0 || q >= H * W || (q == p - 1 && x == 0) || (q == p + 1 && x == W - 1)) continue;
        if (prob[q] > o.threshold && label[size_t(q)] < 0)
          label[size_t(q)] = int32_t(boxes.size()), stack.push_back(q);
      }
    }
    const double w = double(x1 - x0 + 1), h = double(y1 - y0 + 1);
    OcrBox b;
    b.score = sum / double(n);
    if (std::min(w, h) < double(o.min_size) || b.score < o.box_threshold) {
      boxes.push_back({});  // keeps the label numbering; dropped below
      boxes.back().score = -1;
      continue;
    }
    // The map marks a shrunk text kernel: grow it by area · ratio / perimeter on every side.
    const double d = w * h * o.unclip_ratio / (2 * (w + h));
    b.x0 = std::max(0.0, (double(x0) - d) * scale_x),
    b.y0 = std::max(0.0, (double(y0) - d) * scale_y);
    b.x1 = std::min(double(W) * scale_x, (double(x1) + 1 + d) * scale_x);
    b.y1 = std::min(double(H) * scale_y, (double(y1) + 1 + d) * scale_y);
    boxes.push_back(b);
  }
  boxes.erase(
      std::remove_if(boxes.begin(), boxes.end(), [](const OcrBox& b) { return b.score < 0; }),
      boxes.end());
  return boxes;
}

double box_iou(const OcrBox& a, const OcrBox& b) {
  const double iw = std::max(0.0, std::min(a.x1, b.x1) - std::max(a.x0, b.x0));
  const double ih = std::max(0.0, std::min(a.y1, b.y1) - std::max(a.y0, b.y0));
  const double inter = iw * ih;
  const double uni = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter;
  return uni > 0 ? inter / uni : 0.0;
}

void DetScore::add(const std::vector<OcrBox>& truth, const std::vector<OcrBox>& got, double iou) {
  truths += int64_t(truth.size()), found += int64_t(got.size());
  std::vector<bool> used(got.size(), false);
  for (const OcrBox& t : truth) {  // each truth takes its best unused detection
    double best = iou;
    int64_t at = -1;
    for (size_t k = 0; k < got.size(); ++k)
      if (!used[k] && box_iou(t, got[k]) >= best) best = box_iou(t, got[k]), at = int64_t(k);
    if (at >= 0) used[size_t(at)] = true, ++matched;
  }
}

}  // namespace mcw
