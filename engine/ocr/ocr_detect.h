// Text detection as PaddleOCR's DB detector is run: the page prepared as its DetResizeForTest
// and NormalizeImage do (longest side at most 960, both sides multiples of 32; ImageNet mean
// and std on x / 255), and the probability map post-processed as DBPostProcess does for
// axis-aligned text (threshold 0.3, connected regions, box score = mean probability inside
// ≥ 0.6, the box grown by area · 1.5 / perimeter, mapped back to the page). Scored against
// ground-truth boxes by IoU ≥ 0.5 (one match each): recall and precision.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/ocr/ocr_image.h"

namespace mcw {

struct OcrBox {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // page pixels, x1/y1 exclusive
  double score = 0;
};

struct DetInput {
  OnnxValue x;                      // [1, 3, H, W]
  double scale_x = 1, scale_y = 1;  // page pixels per input pixel
};
DetInput ocr_page_input(const Image8& page, int64_t max_side = 960);

struct DbOptions {
  double threshold = 0.3, box_threshold = 0.6, unclip_ratio = 1.5;
  int64_t min_size = 3;  // regions with a side shorter than this are dropped
};
// prob [H, W] (the detector's map) -> boxes in page pixels.
std::vector<OcrBox> db_boxes(const float* prob, int64_t H, int64_t W, double scale_x,
                             double scale_y, const DbOptions& o = {});

double box_iou(const OcrBox& a, const OcrBox& b);

struct DetScore {
  int64_t truths = 0, found = 0, matched = 0;
  double median_ms = 0;  // per page, set by score_detector
  void add(const std::vector<OcrBox>& truth, const std::vector<OcrBox>& got, double iou = 0.5);
  double recall() const { return truths ? double(matched) / double(truths) : 0.0; }
  double precision() const { return found ? double(matched) / double(found) : 0.0; }
};

}  // namespace mcw
