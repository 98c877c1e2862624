// AMX kernel of the bf16-weight GEMM (see bf16_dot_gemm.h), for CPUs with AMX-BF16 (Intel
// Sapphire Rapids and later). Functions carry the target attribute, so the file builds with
// the baseline flags; the driver calls it only when amx_bf16_usable().
//
// The product is computed transposed, Yᵀ = W · Xᵀ, so that W is read straight from the
// mapping: a tile of W is 16 of its rows × 32 bf16 along k, loaded at the row stride as it
// lies. TDPBF16PS wants its second operand in pairs along k ("VNNI" layout: row p holds,
// for each of 16 columns, the two values k = 2p, 2p + 1), which for Xᵀ is a 16 × 16
// transpose of 32-bit pairs of X; the driver packs X that way once per call
// (pack_x_tiles), so every tile of X is one 1 KiB load. Each 16 × 16 f32 result tile is the
// transpose of a block of Y and is written out through a small buffer.
//
// Register blocking: 2 × 2 result tiles (tmm0–3) from 2 tiles of W (tmm4–5) and 2 of X
// (tmm6–7), i.e. 4 TDPBF16PS per 4 tile loads. X is cut into row blocks (~512 KiB) that stay
// in L2 while a task's panel of W rows passes over them.
#include "engine/kernels/bf16_dot_gemm.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#define MCW_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw")))

namespace mcw::bf16_dot_detail {
namespace {

constexpr int64_t kXBlockBytes = int64_t(512) << 10;

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Every tile in use is 16 rows of 64 bytes.
MCW_AMX void configure_tiles() {
  TileConfig c;
  for (int t = 0; t < 8; ++t) c.rows[t] = 16, c.colsb[t] = 64;
  _tile_loadconfig(&c);
}

// Adds the transposed tile `c` (c[r][i]: W row j + r, X row i0 + i) into Y for the rows of
// X below `m`.
inline void write_tile(const float* c, float* Y, int64_t ldy, int64_t i0, int64_t j, int64_t m,
                       const float* bias, bool accumulate) {
  const int64_t rows = std::min<int64_t>(16, m - i0);
  for (int64_t i = 0; i < rows; ++i) {
    float* y = Y + (i0 + i) * ldy + j;
    for (int r = 0; r < 16; ++r) {
      float v = c[r * 16 + i];
      if (bias) v += bias[j + r];
      y[r] = accumulate ? y[r] + v : v;
    }
  }
}

}  // namespace

bool amx_bf16_permitted() {
  // Linux hands out AMX's tile state only on request (arch_prctl, kernel 5.16+).
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
}

void pack_x_tiles(const uint16_t* Xb, int64_t ldxb, int64_t i0, int64_t i1, uint16_t* Xt) {
  const int64_t steps = ldxb / 32;
  for (int64_t b = i0 / 16; b * 16 < i1; ++b)
    for (int64_t s = 0; s < steps; ++s) {
      uint32_t* tile = reinterpret_cast<uint32_t*>(Xt + (b * steps + s) * 512);
      for (int64_t i = 0; i < 16; ++i) {
        const int64_t row = b * 16 + i;
        uint32_t pairs[16] = {};  // rows past the end of X stay zero
        if (row < i1) std::memcpy(pairs, Xb + row * ldxb + s * 32, 64);
        for (int p = 0; p < 16; ++p) tile[p * 16 + i] = pairs[p];
      }
    }
}

MCW_AMX void amx_block(const uint16_t* Xt, int64_t ldxb, int64_t m, const uint16_t* W, int64_t ldw,
                       float* Y, int64_t ldy, int64_t j0, int64_t j1, const float* bias,
                       bool accumulate) {
  configure_tiles();
  const int64_t steps = ldxb / 32, x_tile = 512;  // bf16 per packed tile
  const int64_t m16 = (m + 15) / 16 * 16;
  const int64_t mb = std::max<int64_t>(32, kXBlockBytes / (2 * ldxb) / 32 * 32);
  const size_t w_stride = size_t(ldw) * 2;
  alignas(64) float c[4][256];
  for (int64_t ib = 0; ib < m16; ib += mb) {
    const int64_t ie = std::min(m16, ib + mb);
    for (int64_t j = j0; j < j1; j += 32) {
      const bool two_w = j + 32 <= j1;
      const uint16_t* w0 = W + j * ldw;
      const uint16_t* w1 = W + (j + 16) * ldw;
      for (int64_t i = ib; i < ie; i += 32) {
        const bool two_x = i + 32 <= ie;
        const uint16_t* x0 = Xt + (i / 16) * steps * x_tile;
        const uint16_t* x1 = x0 + steps * x_tile;
        _tile_zero(0);  // (GCC's tile intrinsics are statements, not expressions)
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        // Tile numbers are immediates: the four shapes of the 2 × 2 block are spelled out.
        if (two_w && two_x) {
          for (int64_t s = 0; s < steps; ++s) {
            _tile_loadd(4, w0 + s * 32, w_stride);
            _tile_loadd(5, w1 + s * 32, w_stride);
            _tile_loadd(6, x0 + s * x_tile, 64);
            _tile_loadd(7, x1 + s * x_tile, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
        } else if (two_w) {
          for (int64_t s = 0; s < steps; ++s) {
            _tile_loadd(4, w0 + s * 32, w_stride);
            _tile_loadd(5, w1 + s * 32, w_stride);
            _tile_loadd(6, x0 + s * x_tile, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(2, 5, 6);
          }
        } else if (two_x) {
          for (int64_t s = 0; s < steps; ++s) {
            _tile_loadd(4, w0 + s * 32, w_stride);
            _tile_loadd(6, x0 + s * x_tile, 64);
            _tile_loadd(7, x1 + s * x_tile, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
          }
        } else {
          for (int64_t s = 0; s < steps; ++s) {
            _tile_loadd(4, w0 + s * 32, w_stride);
            _tile_loadd(6, x0 + s * x_tile, 64);
            _tile_dpbf16ps(0, 4, 6);
          }
        }
        _tile_stored(0, c[0], 64);
        write_tile(c[0], Y, ldy, i, j, m, bias, accumulate);
        if (two_x) {
          _tile_stored(1, c[1], 64);
          write_tile(c[1], Y, ldy, i + 16, j, m, bias, accumulate);
        }
        if (two_w) {
          _tile_stored(2, c[2], 64);
          write_tile(c[2], Y, ldy, i, j + 16, m, bias, accumulate);
        }
        if (two_w && two_x) {
          _tile_stored(3, c[3], 64);
          write_tile(c[3], Y, ldy, i + 16, j + 16, m, bias, accumulate);
        }
      }
    }
  }
  _tile_release();
}

}  // namespace mcw::bf16_dot_detail

#endif
