// The portable path of the lookup-table product: the same lookups as the SIMD path, one
// nibble at a time, so it is the reference the SIMD path is held to bit for bit (and the
// tests hold both to an f64 product computed from the codes).
#include <bit>
#include <cmath>
#include <vector>

#include "engine/kernels/lut_gemv.h"
#include "engine/kernels/lut_gemv_isa.h"

namespace mcw::lut_detail {
namespace {

// The 8 tables of a superchunk's 32 values v: entry i of table c = Σ_k bit_k(i)·v[4c + k].
// Each entry is an earlier one plus one value (the index without its lowest set bit).
void tables_of(const int8_t* v, int8_t* t) {
  for (int c = 0; c < 8; ++c) {
    int8_t* tc = t + 16 * c;
    tc[0] = 0;
    for (unsigned i = 1; i < 16; ++i)
      tc[i] = int8_t(tc[i & (i - 1)] + v[4 * c + std::countr_zero(i)]);
  }
}

void prepare(const float* x, int64_t width, int64_t group, bool split, int8_t* tables, float* dx,
             float* sx) {
  std::vector<int8_t> q(static_cast<size_t>(width));
  lut_quantize_activations(x, width, group, split ? LutActivations::Int8 : LutActivations::Int6,
                           q.data(), dx, sx);
  for (int64_t s = 0; s < width / kSuperchunk; ++s) {
    const int8_t* v = q.data() + s * kSuperchunk;
    int8_t* t = tables + s * table_bytes(split);
    if (!split) {
      tables_of(v, t);  // |T| <= 4·31
      continue;
    }
    int8_t low[kSuperchunk], high[kSuperchunk];  // x̂ = 16·high + low
    for (int k = 0; k < kSuperchunk; ++k) low[k] = int8_t(v[k] & 15), high[k] = int8_t(v[k] >> 4);
    tables_of(low, t);                 // 0 .. 60
    tables_of(high, t + kTableBytes);  // −32 .. 28
  }
}

void rows(const LutView& w, const LutX& x, int64_t b0, int64_t b1, const GemvOutput& y) {
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* block = w.codes + b * w.block_bytes;
    for (int rr = 0; rr < kBlockRows; ++rr) {
      const int64_t r = b * kBlockRows + rr;
      if (r >= w.rows) break;
      for (int64_t i = 0; i < x.m; ++i) {
        const int8_t* tables = x.tables + i * x.ld_tables;
        float acc = 0;
        for (int64_t g = 0; g < w.groups; ++g) {
          // |S| <= 15·127·group_size < 2^31 (group_size <= 2^20, lut_gemv.cpp).
          int32_t S = 0;
          for (int64_t s = g * w.supers_per_group; s < (g + 1) * w.supers_per_group; ++s)
            for (int k = 0; k < records(w.bits); ++k) {
              const RecordKind rk = record_kind(w.bits, k);
              const uint8_t* rec = block + g * w.group_bytes +
                                   ((s % w.supers_per_group) * records(w.bits) + k) * kRecordBytes;
              for (int j = 0; j < 4; ++j)
                for (int hi = 0; hi < 2; ++hi) {
                  const int index = (rec[4 * rr + j] >> (4 * hi)) & 15;
                  const int8_t* t =
                      tables + s * table_bytes(x.split) + 16 * nibble_table(rk, j, hi) + index;
                  // Int8: T = TL + 16·TH
                  const int32_t T = x.split ? t[0] + 16 * t[kTableBytes] : t[0];
                  S += T * (1 << nibble_plane(rk, j));
                }
            }
          const float* scale = reinterpret_cast<const float*>(
              block + (g + 1) * w.group_bytes - 2 * kBlockRows * int64_t(sizeof(float)));
          const float f = scale[rr] * x.dx[i * x.ld_groups + g];
          acc = std::fma(float(S), f, acc);
          acc = std::fma(scale[kBlockRows + rr], x.sx[i * x.ld_groups + g], acc);
        }
        y.store(i, r, acc);
      }
    }
  }
}

}  // namespace

const LutIsa& lut_isa_generic() {
  static const LutIsa isa{"generic", prepare, rows};
  return isa;
}

}  // namespace mcw::lut_detail
