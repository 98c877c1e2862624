// The image side of OCR recognition: a text-line image made into the recogniser's input as
// PaddleOCR's `resize_norm_img` makes it (rec_image_shape 3, 48, 320): scaled to height 48
// keeping its aspect ratio (bilinear, pixel centres as OpenCV's INTER_LINEAR), the canvas
// 48 × max(320, 48 · w / h) wide, values (x / 255 − 0.5) / 0.5, padded with zeros on the
// right; channels in the image's order (OpenCV's BGR there; rendered grey lines do not care).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/onnx/onnx_value.h"

namespace mcw {

struct Image8 {
  int64_t width = 0, height = 0, channels = 3;  // 1 (grey) or 3
  std::vector<uint8_t> pixels;                  // rows of width · channels bytes
};

// Throws mcw::Error for an empty image or one whose pixels do not match its size.
void check_image(const Image8& img);
// `img` resampled to w × h as OpenCV's INTER_LINEAR does (bilinear at pixel centres, edges
// clamped): [3, h, w] values in 0..255, channel-first, a grey image repeated in all three.
std::vector<float> resize_bilinear(const Image8& img, int64_t w, int64_t h);

// [1, 3, height, W] for the recogniser.
OnnxValue ocr_line_input(const Image8& img, int64_t height = 48, int64_t min_width = 320);

}  // namespace mcw
