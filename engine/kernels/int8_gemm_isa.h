// The per-ISA kernels of int8_gemm.h: one tile of 16 output rows against 8 rows of x̂.
#pragma once
#include <cstdint>

#include "engine/kernels/int8_gemm.h"

namespace mcw::int8_gemm_detail {

// out[i·16 + r] = Σ_block scale·d[i, block]·(codes of row r · x̂ row i) + offset·xs[i, block],
// i < 8: xq [8][w.row_slots()] int8, d and xs [8][blocks].
using TileKernel = void (*)(const Int8GemmWeight& w, int64_t tile, const int8_t* xq, const float* d,
                            const float* xs, float* out);

void tile_generic(const Int8GemmWeight& w, int64_t tile, const int8_t* xq, const float* d,
                  const float* xs, float* out);
#if defined(__x86_64__)
void tile_avx512_vnni(const Int8GemmWeight& w, int64_t tile, const int8_t* xq, const float* d,
                      const float* xs, float* out);
#endif

}  // namespace mcw::int8_gemm_detail
