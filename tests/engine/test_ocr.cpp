// OCR text and image helpers against their definitions: greedy CTC (argmax, repeats
// collapsed, blanks dropped), Levenshtein distance and CER, UTF-8 decoding, and the
// recogniser's input (aspect-kept resize to height 48, normalisation, zero padding).
#include <gtest/gtest.h>

#include <fstream>

#include "engine/core/error.h"
#include "engine/ocr/ocr_detect.h"
#include "engine/ocr/ocr_image.h"
#include "engine/ocr/ocr_text.h"
#include "temp_files.h"

using namespace mcw;

namespace {

OcrCharset charset() {  // blank, a, b, c, é, space
  OcrCharset c;
  c.labels = {"", "a", "b", "c", "\xc3\xa9", " "};
  return c;
}

// One-hot probabilities for a class sequence.
std::vector<float> one_hot(const std::vector<int>& classes, int C) {
  std::vector<float> p(classes.size() * size_t(C), 0.01f);
  for (size_t t = 0; t < classes.size(); ++t) p[t * size_t(C) + size_t(classes[t])] = 0.9f;
  return p;
}

}  // namespace

TEST(Ocr, GreedyCtcCollapsesRepeatsAndDropsBlanks) {
  const OcrCharset c = charset();
  // a a _ a b b _ _ é space c c  ->  "aabé c"
  const auto p = one_hot({1, 1, 0, 1, 2, 2, 0, 0, 4, 5, 3, 3}, 6);
  EXPECT_EQ(ctc_greedy_decode(p.data(), 12, 6, c), "aab\xc3\xa9 c");
  EXPECT_EQ(ctc_greedy_decode(p.data(), 0, 6, c), "");
  EXPECT_THROW(ctc_greedy_decode(p.data(), 2, 7, c), Error);  // class count mismatch
}

TEST(Ocr, EditDistanceAndCer) {
  EXPECT_EQ(edit_distance(U"kitten", U"sitting"), 3);
  EXPECT_EQ(edit_distance(U"", U"abc"), 3);
  EXPECT_EQ(edit_distance(U"abc", U"abc"), 0);
  EXPECT_EQ(utf8_to_u32("a\xc3\xa9\xe2\x82\xac"), std::u32string(U"a\u00e9\u20ac"));
  OcrScore s;
  s.add("hello world", "hello world");
  s.add("caf\xc3\xa9", "cafe");  // one substitution in 4 code points
  EXPECT_EQ(s.lines, 2);
  EXPECT_EQ(s.exact, 1);
  EXPECT_EQ(s.chars, 15);
  EXPECT_EQ(s.errors, 1);
  EXPECT_DOUBLE_EQ(s.cer(), 1.0 / 15);
}

TEST(Ocr, KeysFileGetsBlankFirstAndSpaceLast) {
  const auto dir = test::fresh_temp_dir();
  std::ofstream(dir / "keys.txt") << "x\ny\r\nz";
  const OcrCharset c = load_ocr_keys((dir / "keys.txt").string());
  EXPECT_EQ(c.labels, (std::vector<std::string>{"", "x", "y", "z", " "}));
  EXPECT_THROW(load_ocr_keys((dir / "missing.txt").string()), Error);
}

// A 2:1 image becomes 48 × 96 of content on a 320-wide canvas: each output pixel the
// bilinear interpolation at OpenCV's pixel centres, normalised to [-1, 1], zeros after.
TEST(Ocr, LineInputResizesKeepingTheAspectAndPads) {
  Image8 img{8, 4, 1, {}};
  for (int64_t y = 0; y < 4; ++y)
    for (int64_t x = 0; x < 8; ++x) img.pixels.push_back(uint8_t(30 * x + 10 * y));
  const OnnxValue v = ocr_line_input(img);
  ASSERT_EQ(v.shape, (Shape{1, 3, 48, 320}));
  const double s = 8.0 / 96.0;  // source pixels per output pixel (both axes: 4 / 48)
  for (int64_t y : {0, 7, 23, 47})
    for (int64_t x : {0, 5, 50, 95}) {
      auto src = [&](double f, int64_t n, int64_t& i0, int64_t& i1) {
        f = std::max(0.0, f);
        i0 = std::min<int64_t>(int64_t(f), n - 1), i1 = std::min<int64_t>(i0 + 1, n - 1);
        return i0 == n - 1 ? 0.0 : f - double(i0);
      };
      int64_t x0, x1, y0, y1;
      const double tx = src((double(x) + 0.5) * s - 0.5, 8, x0, x1),
                   ty = src((double(y) + 0.5) * s - 0.5, 4, y0, y1);
      auto px = [&](int64_t yy, int64_t xx) { return double(img.pixels[size_t(yy * 8 + xx)]); };
      const double want = (1 - ty) * ((1 - tx) * px(y0, x0) + tx * px(y0, x1)) +
                          ty * ((1 - tx) * px(y1, x0) + tx * px(y1, x1));
      for (int c = 0; c < 3; ++c)
        EXPECT_NEAR(v.f[size_t((c * 48 + y) * 320 + x)], (want / 255 - 0.5) / 0.5, 1e-5)
            << y << " " << x;
    }
  EXPECT_EQ(v.f[size_t(10 * 320 + 96)], 0.0f);  // padding
  EXPECT_EQ(v.f[size_t(10 * 320 + 319)], 0.0f);
  Image8 wide{100, 10, 1, std::vector<uint8_t>(1000, 255)};  // 10:1 widens the canvas to 480
  EXPECT_EQ(ocr_line_input(wide).shape, (Shape{1, 3, 48, 480}));
  EXPECT_THROW(ocr_line_input(Image8{}), Error);
}

// DB post-processing on a made-up map: two regions above the threshold become their
// bounding boxes grown by area · 1.5 / perimeter and scaled to the page; a faint region
// (mean under 0.6) and a one-pixel-thin one are dropped.
TEST(Ocr, DbBoxesFromAProbabilityMap) {
  const int64_t H = 20, W = 40;
  std::vector<float> p(size_t(H * W), 0.05f);
  auto fill = [&](int64_t y0, int64_t y1, int64_t x0, int64_t x1, float v) {
    for (int64_t y = y0; y < y1; ++y)
      for (int64_t x = x0; x < x1; ++x) p[size_t(y * W + x)] = v;
  };
  fill(2, 6, 3, 13, 0.9f);     // 10 × 4 text kernel
  fill(10, 14, 20, 36, 0.8f);  // 16 × 4
  fill(16, 19, 2, 8, 0.4f);    // above 0.3, mean under 0.6
  fill(8, 9, 2, 30, 0.95f);    // one row high
  const std::vector<OcrBox> b = db_boxes(p.data(), H, W, 2.0, 3.0);
  ASSERT_EQ(b.size(), 2u);
  const double d0 = 10.0 * 4 * 1.5 / (2 * 14), d1 = 16.0 * 4 * 1.5 / (2 * 20);
  EXPECT_NEAR(b[0].x0, (3 - d0) * 2, 1e-9);
  EXPECT_NEAR(b[0].x1, (13 + d0) * 2, 1e-9);
  EXPECT_NEAR(b[0].y0, 0.0, 1e-9);  // (2 − d0) · 3 < 0: clamped to the page
  EXPECT_NEAR(b[0].y1, (6 + d0) * 3, 1e-9);
  EXPECT_NEAR(b[0].score, 0.9, 1e-6);
  EXPECT_NEAR(b[1].x0, (20 - d1) * 2, 1e-9);
  EXPECT_NEAR(b[1].y1, (14 + d1) * 3, 1e-9);
}

TEST(Ocr, BoxIouAndDetectionScore) {
  const OcrBox a{0, 0, 10, 10}, b{5, 0, 15, 10}, c{20, 20, 30, 30};
  EXPECT_DOUBLE_EQ(box_iou(a, b), 50.0 / 150.0);
  EXPECT_DOUBLE_EQ(box_iou(a, c), 0.0);
  EXPECT_DOUBLE_EQ(box_iou(a, a), 1.0);
  DetScore s;
  s.add({a, c}, {OcrBox{1, 0, 10, 10}, OcrBox{0, 0, 10, 10}, b});  // one match for a, none for c
  EXPECT_EQ(s.truths, 2);
  EXPECT_EQ(s.found, 3);
  EXPECT_EQ(s.matched, 1);
  EXPECT_DOUBLE_EQ(s.recall(), 0.5);
  EXPECT_DOUBLE_EQ(s.precision(), 1.0 / 3);
}

// The detector's input: sides rounded to multiples of 32 under a 960 limit, ImageNet
// normalisation, and the scale back to page pixels.
TEST(Ocr, PageInputSizesAndNormalises) {
  Image8 page{640, 480, 1, std::vector<uint8_t>(640 * 480, 255)};
  const DetInput d = ocr_page_input(page);
  EXPECT_EQ(d.x.shape, (Shape{1, 3, 480, 640}));
  EXPECT_NEAR(d.x.f[0], (1.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(d.x.f[size_t(2 * 480 * 640)], (1.0 - 0.406) / 0.225, 1e-5);
  Image8 big{2000, 100, 1, std::vector<uint8_t>(200000, 0)};
  const DetInput e = ocr_page_input(big);
  EXPECT_EQ(e.x.shape, (Shape{1, 3, 64, 960}));  // 100 · 0.48 = 48 rounds to 64 (lround(1.5) · 32)
  EXPECT_DOUBLE_EQ(e.scale_x, 2000.0 / 960);
}
