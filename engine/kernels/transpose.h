// dst[c · ldd + r] = src[r · lds + c] for r < rows, c < cols: moving a tile between a
// channels-first activation (NCHW: a pixel's channels are `pixels` apart) and the rows a
// matrix product reads. Whole 16 × 16 blocks go through 16 vector registers on AVX-512 (three
// rounds of unpacks and lane shuffles), the edges and other CPUs element by element.
#pragma once
#include <cstdint>

namespace mcw {

void transpose_f32(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                   int64_t ldd);

}  // namespace mcw
