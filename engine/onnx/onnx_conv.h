// The 2-D window geometry that Conv, pooling and MCW's calibration of conv layers share,
// and the im2col patches of one image and group: the rows of the matrix a convolution
// multiplies its filters with, so that a conv layer is a linear layer over patches.
#pragma once
#include <cstdint>

#include "engine/onnx/onnx_ops.h"

namespace mcw {

// Kernel, strides, dilations, pads (begin h, w, end h, w) with auto_pad SAME_UPPER /
// SAME_LOWER / VALID resolved, and the output size.
struct Window {
  int64_t kh, kw, sh = 1, sw = 1, dh = 1, dw = 1, ph0 = 0, pw0 = 0, ph1 = 0, pw1 = 0, oh = 0,
                  ow = 0;
  // A 1 × 1 window, stride 1, no padding: a convolution's patches are its input itself.
  bool pointwise() const {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph0 == 0 && pw0 == 0 && ph1 == 0 && pw1 == 0;
  }
};

// The window of node c over an h x w input with a kh x kw kernel; c.fail() for what it
// does not support (non-2-D, other auto_pad values, an empty output).
Window conv_window(const OnnxOpContext& c, int64_t h, int64_t w, int64_t kh, int64_t kw);

// im2col of `channels` planes h x w at src: dst [channels * kh * kw, oh * ow], row
// (channel, ky, kx), zero where the window reads padding. Parallel over rows.
void conv_patches(const float* src, int64_t channels, int64_t h, int64_t w, const Window& g,
                  float* dst);
// One image and group of a convolution on f32 weights: out [cog, oh·ow] = W [cog, channels·kh·kw]
// · patches (+ bias [cog]). A pointwise convolution multiplies the input itself; others make
// their patches a tile of 256 output pixels at a time (tiles in parallel), so the tile's
// im2col stays in cache where the whole image's (66 MB for a 3 × 3 over 96 channels of a
// 160 × 120 map) was written to memory and read back.
void conv_group_f32(const float* w, int64_t cog, const float* src, int64_t channels, int64_t h,
                    int64_t width, const Window& g, const float* bias, float* out);

// The same for output pixels [p0, p1) only (row-major over oh x ow): dst
// [channels * kh * kw, p1 - p0], serial (a convolution runs tiles of pixels in parallel).
void conv_patches_range(const float* src, int64_t channels, int64_t h, int64_t w, const Window& g,
                        int64_t p0, int64_t p1, float* dst);

}  // namespace mcw
