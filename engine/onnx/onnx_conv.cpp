#include "engine/onnx/onnx_conv.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <string>
#include <vector>

#include "engine/kernels/gemm.h"

namespace mcw {

Window conv_window(const OnnxOpContext& c, int64_t h, int64_t w, int64_t kh, int64_t kw) {
  Window g{kh, kw};
  if (const auto s = c.attr_ints("strides"); !s.empty()) {
    if (s.size() != 2) c.fail("only 2-D windows are supported");
    g.sh = s[0], g.sw = s[1];
  }
  if (const auto d = c.attr_ints("dilations"); !d.empty()) g.dh = d[0], g.dw = d[1];
  const std::string pad = c.attr_string("auto_pad", "NOTSET");
  const int64_t ekh = (kh - 1) * g.dh + 1, ekw = (kw - 1) * g.dw + 1;
  if (pad == "SAME_UPPER" || pad == "SAME_LOWER") {
    g.oh = (h + g.sh - 1) / g.sh, g.ow = (w + g.sw - 1) / g.sw;
    const int64_t th = std::max<int64_t>(0, (g.oh - 1) * g.sh + ekh - h),
                  tw = std::max<int64_t>(0, (g.ow - 1) * g.sw + ekw - w);
    const bool upper = pad == "SAME_UPPER";
    g.ph0 = upper ? th / 2 : th - th / 2, g.ph1 = th - g.ph0;
    g.pw0 = upper ? tw / 2 : tw - tw / 2, g.pw1 = tw - g.pw0;
    return g;
  }
  if (pad != "NOTSET" && pad != "VALID") c.fail("auto_pad " + pad + " is not supported");
  if (const auto p = c.attr_ints("pads"); !p.empty() && pad == "NOTSET") {
    if (p.size() != 4) c.fail("only 2-D pads are supported");
    g.ph0 = p[0], g.pw0 = p[1], g.ph1 = p[2], g.pw1 = p[3];
  }
  g.oh = (h + g.ph0 + g.ph1 - ekh) / g.sh + 1, g.ow = (w + g.pw0 + g.pw1 - ekw) / g.sw + 1;
  if (g.oh <= 0 || g.ow <= 0) c.fail("the window is larger than the padded input");
  return g;
}

void conv_patches_range(const float* src, int64_t channels, int64_t h, int64_t w, const Window& g,
                        int64_t p0, int64_t p1, float* dst) {
  const int64_t n = p1 - p0;
  for (int64_t row = 0; row < channels * g.kh * g.kw; ++row) {
    const int64_t ch = row / (g.kh * g.kw), a = row / g.kw % g.kh, b = row % g.kw;
    float* out = dst + row * n;
    const float* plane = src + ch * h * w;
    int64_t i = p0 / g.ow, j = p0 % g.ow;
    for (int64_t p = 0; p < n; ++p) {
      const int64_t yy = i * g.sh - g.ph0 + a * g.dh, xx = j * g.sw - g.pw0 + b * g.dw;
      out[p] = yy < 0 || yy >= h || xx < 0 || xx >= w ? 0.0f : plane[yy * w + xx];
      if (++j == g.ow) j = 0, ++i;
    }
  }
}

void conv_patches(const float* src, int64_t channels, int64_t h, int64_t w, const Window& g,
                  float* dst) {
  const int64_t pixels = g.oh * g.ow;
  tbb::parallel_for(int64_t(0), channels * g.kh * g.kw, [&](int64_t row) {
    const int64_t ch = row / (g.kh * g.kw), a = row / g.kw % g.kh, b = row % g.kw;
    float* out = dst + row * pixels;
    for (int64_t i = 0; i < g.oh; ++i) {
      const int64_t yy = i * g.sh - g.ph0 + a * g.dh;
      for (int64_t j = 0; j < g.ow; ++j) {
        const int64_t xx = j * g.sw - g.pw0 + b * g.dw;
        out[i * g.ow + j] =
            yy < 0 || yy >= h || xx < 0 || xx >= w ? 0.0f : src[(ch * h + yy) * w + xx];
      }
    }
  });
}

void conv_group_f32(const float* w, int64_t cog, const float* src, int64_t channels, int64_t h,
                    int64_t width, const Window& g, const float* bias, float* out) {
  const int64_t patch = channels * g.kh * g.kw, pixels = g.oh * g.ow;
  const bool pointwise = g.pointwise();
  constexpr int64_t kTile = 256;
  const int64_t tiles = (pixels + kTile - 1) / kTile;
  if (pointwise) {
    matmul(w, src, out, cog, pixels, patch);
  } else if (tiles == 1) {  // one tile: the patches in parallel by rows, then one GEMM
    std::vector<float> cols(size_t(patch * pixels));
    conv_patches(src, channels, h, width, g, cols.data());
    matmul(w, cols.data(), out, cog, pixels, patch);
  } else {
    tbb::parallel_for(int64_t(0), tiles, [&](int64_t t) {
      const int64_t p0 = t * kTile, p1 = std::min(pixels, p0 + kTile);
      std::vector<float> cols(size_t(patch * (p1 - p0)));
      conv_patches_range(src, channels, h, width, g, p0, p1, cols.data());
      matmul_strided(w, patch, cols.data(), p1 - p0, out + p0, pixels, cog, p1 - p0, patch);
    });
  }
  if (bias)
    for (int64_t o = 0; o < cog; ++o)
      for (int64_t p = 0; p < pixels; ++p) out[o * pixels + p] += bias[o];
}

}  // namespace mcw
