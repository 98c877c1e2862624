// Portable path of the packed small-m products: plain loops, one row of W at a time, the
// reference the SIMD paths are tested against.
#include "engine/core/half.h"
#include "engine/kernels/packed_gemv_isa.h"

namespace mcw::packed_detail {
namespace {

constexpr int kMaxM = 8;

void generic_affine(const AffineView& w, const XRows& x, int64_t r0, int64_t r1, const YOut& y) {
  const int64_t ub = unit_bytes(w.bits);
  uint8_t q[kUnit];
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.codes + r * w.row_bytes;
    float acc[kMaxM] = {};
    for (int64_t g = 0; g < w.groups; ++g) {
      float dot[kMaxM] = {};
      for (int64_t u = 0; u < w.units_per_group; ++u) {
        const int64_t unit = g * w.units_per_group + u;
        decode_unit(w.bits, row + unit * ub, q);
        for (int64_t i = 0; i < x.m; ++i) {
          const float* xs = x.x + i * x.ldx + unit * kUnit;
          float s = 0;
          for (int j = 0; j < kUnit; ++j) s += float(q[j]) * xs[j];
          dot[i] += s;
        }
      }
      const float scale = w.scale[r * w.groups + g], offset = w.offset[r * w.groups + g];
      for (int64_t i = 0; i < x.m; ++i) acc[i] += scale * dot[i] + offset * x.sum[i * x.ldsum + g];
    }
    for (int64_t i = 0; i < x.m; ++i) y.store(i, r, acc[i]);
  }
}

}  // namespace

void affine_i8_generic(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1,
                       const YOut& y) {
  const int64_t ub = unit_bytes(w.bits);
  uint8_t q[kUnit];
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.codes + r * w.row_bytes;
    float acc[kMaxM] = {};
    for (int64_t g = 0; g < w.groups; ++g) {
      const float scale = w.scale[r * w.groups + g], offset = w.offset[r * w.groups + g];
      int32_t dot[kMaxM] = {};
      for (int64_t u = 0; u < w.units_per_group; ++u) {
        const int64_t unit = g * w.units_per_group + u;
        decode_unit(w.bits, row + unit * ub, q);
        for (int64_t i = 0; i < x.m; ++i) {
          const int8_t* xq = x.x[i].q.data() + unit * kUnit;
          for (int j = 0; j < kUnit; ++j) dot[i] += int32_t(q[j]) * xq[j];
        }
        // The end of an activation block (blocks never straddle a group).
        if (((unit + 1) * kUnit) % x.x[0].block) continue;
        for (int64_t i = 0; i < x.m; ++i) {
          acc[i] += scale * (x.x[i].d[size_t(unit * kUnit / x.x[i].block)] * float(dot[i]));
          dot[i] = 0;
        }
      }
      for (int64_t i = 0; i < x.m; ++i) acc[i] += offset * x.sum[i * x.ldsum + g];
    }
    for (int64_t i = 0; i < x.m; ++i) y.store(i, r, acc[i]);
  }
}

namespace {

void generic_f16(const F16View& w, const XRows& x, int64_t r0, int64_t r1, const YOut& y) {
  float row[kUnit];
  for (int64_t r = r0; r < r1; ++r) {
    float acc[kMaxM] = {};
    for (int64_t c = 0; c < w.ld; c += kUnit) {
      f16_to_f32_row(w.w + r * w.ld + c, row, kUnit);
      for (int64_t i = 0; i < x.m; ++i) {
        const float* xs = x.x + i * x.ldx + c;
        for (int j = 0; j < kUnit; ++j) acc[i] += row[j] * xs[j];
      }
    }
    for (int64_t i = 0; i < x.m; ++i) y.store(i, r, acc[i]);
  }
}

void generic_sparse24(const Sparse24View& w, const XRows& x, int64_t r0, int64_t r1,
                      const YOut& y) {
  for (int64_t r = r0; r < r1; ++r) {
    float acc[kMaxM] = {};
    for (int64_t b = 0; b < w.blocks; ++b) {
      const uint16_t* v = w.values + (r * w.blocks + b) * 16;
      const uint32_t pos = w.positions[r * w.blocks + b];
      for (int k = 0; k < 16; ++k) {
        const int64_t col = 32 * b + 4 * (k / 2) + ((pos >> (2 * k)) & 3);
        const float wv = f16_to_f32(v[k]);
        for (int64_t i = 0; i < x.m; ++i) acc[i] += wv * x.x[i * x.ldx + col];
      }
    }
    for (int64_t i = 0; i < x.m; ++i) y.store(i, r, acc[i]);
  }
}

}  // namespace

const PackedGemvIsa& packed_isa_generic() {
  static const PackedGemvIsa isa{"generic", generic_affine, affine_i8_generic, generic_f16,
                                 generic_sparse24};
  return isa;
}

}  // namespace mcw::packed_detail
