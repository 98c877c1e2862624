#include "engine/kernels/int8_gemm.h"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/int8_gemm_isa.h"
#include "engine/kernels/quantize_activations_isa.h"

namespace mcw {

using int8_gemm_detail::TileKernel;

namespace {

constexpr int64_t kMaxBlock = 256;  // slots of x̂ per activation scale

TileKernel tile_kernel() {
#if defined(__x86_64__)
  if (int8_gemm_fast()) return int8_gemm_detail::tile_avx512_vnni;
#endif
  return int8_gemm_detail::tile_generic;
}

}  // namespace

bool int8_gemm_fast() {
  const CpuFeatures& f = cpu_features();
  return f.level == SimdLevel::Avx512 && f.avx512vnni;
}

std::optional<Int8GemmWeight> Int8GemmWeight::from_compressed(const CompressedTensor& t) {
  if (t.coding != WeightCoding::Affine || !t.mask.empty() || !t.outlier_index.empty() ||
      !t.input_scale.empty() || t.bits < 1 || t.bits > 8 || t.rows <= 0 || t.cols <= 0)
    return std::nullopt;
  Int8GemmWeight w;
  w.scheme_ = t.describe();
  w.rows_ = t.rows, w.cols_ = t.cols, w.groups_ = t.groups();
  w.bits_ = t.bits <= 4 ? 4 : 8;  // narrower codes ride in nibbles
  // Each group's columns in increasing order (act-order's g_idx scatters them), cut into
  // blocks of at most kMaxBlock, each padded to whole steps of 8.
  std::vector<std::vector<int32_t>> columns(size_t(w.groups_));
  for (int64_t c = 0; c < t.cols; ++c) columns[size_t(t.group_of(c))].push_back(int32_t(c));
  for (int64_t g = 0; g < w.groups_; ++g) {
    const std::vector<int32_t>& cs = columns[size_t(g)];
    for (size_t c0 = 0; c0 < cs.size(); c0 += size_t(kMaxBlock)) {
      const size_t n = std::min(cs.size() - c0, size_t(kMaxBlock));
      const int64_t slots = (int64_t(n) + 15) / 16 * 16;
      const bool run = cs[c0 + n - 1] - cs[c0] == int32_t(n - 1);  // consecutive columns
      w.blocks_.push_back({int32_t(g), w.slots_, slots, run ? cs[c0] : -1, int64_t(n)});
      w.slot_col_.insert(w.slot_col_.end(), cs.begin() + std::ptrdiff_t(c0),
                         cs.begin() + std::ptrdiff_t(c0 + n));
      w.slot_col_.resize(size_t(w.slots_ + slots), -1);
      w.slots_ += slots;
    }
  }
  const int64_t tiles = (t.rows + kTileRows - 1) / kTileRows;
  w.codes_.assign(size_t(tiles * w.tile_bytes()), 0);
  w.scale_.assign(size_t(tiles * w.groups_ * 16), 0.0f);
  w.offset_.assign(w.scale_.size(), 0.0f);
  std::vector<uint8_t> q(size_t(t.cols));
  for (int64_t r = 0; r < t.rows; ++r) {
    unpack_codes_from(t.codes.data(), size_t(r * t.cols), size_t(t.cols), t.bits, q.data());
    const int64_t tile = r / kTileRows, lane = r % kTileRows;
    uint8_t* codes = w.codes_.data() + tile * w.tile_bytes();
    for (int64_t s = 0; s < w.slots_; ++s) {
      const int32_t c = w.slot_col_[size_t(s)];
      if (c < 0) continue;  // padding meets x̂ = 0
      const int64_t step = s / 8, j = s % 8;
      uint8_t* p = codes + step * w.step_bytes();
      if (w.bits_ == 8)
        p[(j / 4) * 64 + lane * 4 + j % 4] = q[size_t(c)];
      else
        p[lane * 4 + j % 4] |= uint8_t(q[size_t(c)] << (j < 4 ? 0 : 4));
    }
    for (int64_t g = 0; g < w.groups_; ++g) {
      const size_t k = size_t(r * w.groups_ + g), at = size_t((tile * w.groups_ + g) * 16 + lane);
      w.scale_[at] = t.scales[k];
      w.offset_[at] = -t.scales[k] * t.zero_point(k);
    }
  }
  return w;
}

std::string Int8GemmWeight::describe() const { return scheme_ + " (int8 GEMM tiles)"; }

void Int8GemmWeight::quantize_rows(const float* X, int64_t ldx, int64_t n, int8_t* xq, float* d,
                                   float* xs) const {
  const int64_t nb = int64_t(blocks_.size());
  [[maybe_unused]] const bool avx512 = int8_gemm_fast();
  // A block in slot order, zero-padded; per thread, as products run many small tasks.
  thread_local std::vector<float> v;
  v.resize(size_t(kMaxBlock));
  int16_t qsum[kMaxBlock / 16];
  for (int64_t i = 0; i < n; ++i) {
    const float* x = X + i * ldx;
    for (int64_t b = 0; b < nb; ++b) {
      const Int8GemmBlock& blk = blocks_[size_t(b)];
      const float* vb = v.data();
      if (blk.col0 >= 0 && blk.cols == blk.length) {
        vb = x + blk.col0;  // whole and in order: read in place
      } else {
        for (int64_t s = 0; s < blk.cols; ++s)
          v[size_t(s)] = x[blk.col0 >= 0 ? blk.col0 + s : slot_col_[size_t(blk.slot0 + s)]];
        std::fill(v.begin() + blk.cols, v.begin() + blk.length, 0.0f);
      }
      float amax = 0;
      int8_t* q = xq + i * slots_ + blk.slot0;
      int64_t qs = 0;  // Σx̂, exact: the offsets meet x̂ as the codes do
#if defined(__x86_64__)
      if (avx512) {  // the small-m path's pieces (quantize_activations_isa.h)
        block_detail::block_amax_avx512(vb, blk.length, amax);
        block_detail::block_round_avx512(vb, blk.length, amax > 0 ? 127.0f / amax : 0.0f, q, qsum);
        for (int64_t k = 0; k < blk.length / 16; ++k) qs += qsum[size_t(k)];
      } else
#endif
      {
        for (int64_t s = 0; s < blk.length; ++s) amax = std::max(amax, std::abs(vb[s]));
        const float inv = amax > 0 ? 127.0f / amax : 0.0f;
        for (int64_t s = 0; s < blk.length; ++s) qs += q[s] = int8_t(std::lround(vb[s] * inv));
      }
      d[i * nb + b] = amax / 127.0f;
      xs[i * nb + b] = float(qs) * (amax / 127.0f);
    }
  }
}

void Int8GemmWeight::matmul(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
                            const float* bias, bool accumulate) const {
  if (m <= 0 || rows_ == 0) return;
  const int64_t nb = int64_t(blocks_.size()), xblocks = (m + kXRows - 1) / kXRows;
  const int64_t tiles = (rows_ + kTileRows - 1) / kTileRows;
  const TileKernel kernel = tile_kernel();
  // Tile `tile` against x block xb (its x̂, scales and sums at xq, d, xs) into Y.
  auto run_tile = [&](int64_t xb, int64_t tile, const int8_t* xq, const float* d, const float* xs) {
    float out[kXRows * 16];
    kernel(*this, tile, xq, d, xs, out);
    const int64_t i0 = xb * kXRows, r0 = tile * kTileRows, nr = std::min(kTileRows, rows_ - r0);
    for (int64_t i = 0; i < std::min(kXRows, m - i0); ++i) {
      float* y = Y + (i0 + i) * ldy + r0;
      for (int64_t r = 0; r < nr; ++r) {
        const float v = out[i * 16 + r] + (bias ? bias[r0 + r] : 0.0f);
        y[r] = accumulate ? y[r] + v : v;
      }
    }
  };
  // x block xb rounded into xq [8][slots], d and xs [8][blocks]; rows past m are zero
  // (x̂ = 0, d = 0: nothing added).
  auto round_block = [&](int64_t xb, int8_t* xq, float* d, float* xs) {
    const int64_t i0 = xb * kXRows, n = std::min(kXRows, m - i0);
    quantize_rows(X + i0 * ldx, ldx, n, xq, d, xs);
    std::fill(xq + n * slots_, xq + kXRows * slots_, int8_t(0));
    std::fill(d + n * nb, d + kXRows * nb, 0.0f);
    std::fill(xs + n * nb, xs + kXRows * nb, 0.0f);
  };
  if (xblocks >= 4 * int64_t(tbb::this_task_arena::max_concurrency())) {
    // Enough x blocks to share out evenly: each task rounds its own 8 rows, then runs every
    // tile against them (one parallel pass; buffers of 8 rows, per thread).
    tbb::parallel_for(int64_t(0), xblocks, [&](int64_t xb) {
      thread_local std::vector<int8_t> xq;
      thread_local std::vector<float> d, xs;
      xq.resize(size_t(kXRows * slots_)), d.resize(size_t(kXRows * nb)), xs.resize(d.size());
      round_block(xb, xq.data(), d.data(), xs.data());
      for (int64_t tile = 0; tile < tiles; ++tile)
        run_tile(xb, tile, xq.data(), d.data(), xs.data());
    });
    return;
  }
  // Few rows (decode, short prompts): round them all, then share out the tiles.
  std::vector<int8_t> xq(size_t(xblocks * kXRows * slots_));
  std::vector<float> d(size_t(xblocks * kXRows * nb)), xs(d.size());
  tbb::parallel_for(int64_t(0), xblocks, [&](int64_t xb) {
    round_block(xb, xq.data() + xb * kXRows * slots_, d.data() + xb * kXRows * nb,
                xs.data() + xb * kXRows * nb);
  });
  tbb::parallel_for(tbb::blocked_range2d<int64_t>(0, xblocks, 0, tiles), [&](const auto& range) {
    for (int64_t xb = range.rows().begin(); xb < range.rows().end(); ++xb)
      for (int64_t tile = range.cols().begin(); tile < range.cols().end(); ++tile)
        run_tile(xb, tile, xq.data() + xb * kXRows * slots_, d.data() + xb * kXRows * nb,
                 xs.data() + xb * kXRows * nb);
  });
}

namespace int8_gemm_detail {

void tile_generic(const Int8GemmWeight& w, int64_t tile, const int8_t* xq, const float* d,
                  const float* xs, float* out) {
  constexpr int64_t R = Int8GemmWeight::kXRows;
  const int64_t slots = w.row_slots(), nb = int64_t(w.blocks().size());
  const uint8_t* codes = w.tile_codes(tile);
  std::fill(out, out + R * 16, 0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    const Int8GemmBlock& blk = w.blocks()[size_t(b)];
    int32_t sum[R][16] = {};
    for (int64_t s = blk.slot0; s < blk.slot0 + blk.length; ++s) {
      const uint8_t* p = codes + s / 8 * w.step_bytes();
      const int64_t j = s % 8;
      for (int64_t r = 0; r < 16; ++r) {
        const int32_t q = w.bits() == 8 ? p[(j / 4) * 64 + r * 4 + j % 4]
                                        : (p[r * 4 + j % 4] >> (j < 4 ? 0 : 4)) & 0x0f;
        for (int64_t i = 0; i < R; ++i) sum[i][r] += q * xq[i * slots + s];
      }
    }
    const float* scale = w.tile_scales(tile) + blk.group * 16;
    const float* offset = w.tile_offsets(tile) + blk.group * 16;
    for (int64_t i = 0; i < R; ++i)
      for (int64_t r = 0; r < 16; ++r)
        out[i * 16 + r] +=
            float(sum[i][r]) * (scale[r] * d[i * nb + b]) + offset[r] * xs[i * nb + b];
  }
}

}  // namespace int8_gemm_detail

}  // namespace mcw
