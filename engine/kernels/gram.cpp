#include "engine/kernels/gram.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <vector>

#include "engine/kernels/gemm_isa.h"

namespace mcw {
namespace {

// 256 × 256 tiles: a tile's f32 product and the f64 rows it updates stay in L2 while all
// the chunks of rows pass through them.
constexpr int64_t kTile = 256, kChunkRows = 256;
// Below this many multiply-adds the work stays on the calling thread.
constexpr double kSerialFlops = double(int64_t(1) << 18);

struct TilePair {
  int64_t i0, j0, mt, nt;  // H[i0 : i0 + mt, j0 : j0 + nt], i0 <= j0
};

// The t-th tile on or above the diagonal of a c × c matrix, in row order.
TilePair tile_pair(int64_t t, int64_t c) {
  const int64_t tiles = (c + kTile - 1) / kTile;
  int64_t ti = 0;
  while (t >= tiles - ti) t -= tiles - ti, ++ti;
  const int64_t i0 = ti * kTile, j0 = (ti + t) * kTile;
  return {i0, j0, std::min(kTile, c - i0), std::min(kTile, c - j0)};
}

int64_t tile_pairs(int64_t c) {
  const int64_t tiles = (c + kTile - 1) / kTile;
  return tiles * (tiles + 1) / 2;
}

// Runs fn(t, pair, scratch) for every tile pair; scratch holds 2 · kTile² floats for the
// task's own use, allocated per task so that nothing outlives the call.
template <class Fn>
void for_each_pair(int64_t c, bool parallel, const Fn& fn) {
  const int64_t pairs = tile_pairs(c);
  auto run = [&](int64_t t0, int64_t t1) {
    const std::unique_ptr<float[]> scratch(new float[size_t(2 * kTile * kTile)]);
    for (int64_t t = t0; t < t1; ++t) fn(t, tile_pair(t, c), scratch.get());
  };
  if (!parallel) return run(0, pairs);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, pairs, 1),
                    [&](const tbb::blocked_range<int64_t>& r) { run(r.begin(), r.end()); });
}

// Σ a[j]·b[j] in f64 with eight independent sums, so that the additions pipeline (and
// vectorise) instead of waiting on one another.
double dot_f64(const float* a, const float* b, int64_t n) {
  double acc[8] = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += double(a[j + k]) * double(b[j + k]);
  for (; j < n; ++j) acc[0] += double(a[j]) * double(b[j]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace

void accumulate_gram(const float* X, int64_t ldx, int64_t n, int64_t c, double* G) {
  if (n < 0 || c < 0) throw std::invalid_argument("accumulate_gram: negative matrix size");
  if (ldx < c) throw std::invalid_argument("accumulate_gram: leading dimension too small");
  if (n == 0 || c == 0) return;
  for_each_pair(c, double(n) * double(c) * double(c) >= kSerialFlops,
                [&](int64_t, const TilePair& p, float* part) {
    for (int64_t r0 = 0; r0 < n; r0 += kChunkRows) {
      const int64_t rows = std::min(kChunkRows, n - r0);
      const float* x = X + r0 * ldx;
      gemm_detail::matmul_serial(x + p.i0, 1, ldx, x + p.j0, ldx, 1, part, p.nt, p.mt, p.nt,
                                 rows);
      for (int64_t i = 0; i < p.mt; ++i) {
        double* g = G + (p.i0 + i) * c + p.j0;
        const float* q = part + i * p.nt;
        for (int64_t j = 0; j < p.nt; ++j) g[j] += double(q[j]);
      }
      if (p.i0 == p.j0) continue;
      // The mirror tile: the f32 product is exactly symmetric (the same FMAs in the same
      // order), so this is what a full product would have added there.
      for (int64_t j = 0; j < p.nt; ++j) {
        double* g = G + (p.j0 + j) * c + p.i0;
        for (int64_t i = 0; i < p.mt; ++i) g[i] += double(part[i * p.nt + j]);
      }
    }
  });
}

double weighted_square_norm(const float* M, int64_t rows, int64_t cols, const double* H) {
  if (rows < 0 || cols < 0)
    throw std::invalid_argument("weighted_square_norm: negative matrix size");
  if (rows == 0 || cols == 0) return 0.0;
  // Σ_r m_r·H·m_rᵀ = Σ over tiles (I, J) of M[:, I]·H[I, J]·M[:, J]ᵀ summed elementwise;
  // a tile above the diagonal stands for its mirror too.
  std::vector<double> partial(size_t(tile_pairs(cols)), 0.0);
  for_each_pair(cols, double(rows) * double(cols) * double(cols) >= kSerialFlops,
                [&](int64_t t, const TilePair& p, float* scratch) {
    float* h = scratch;
    float* mh = scratch + kTile * kTile;
    for (int64_t i = 0; i < p.mt; ++i)
      for (int64_t j = 0; j < p.nt; ++j) {  // a diagonal tile's lower half from its upper
        const int64_t a = p.i0 + i, b = p.j0 + j;
        h[i * p.nt + j] = float(a <= b ? H[a * cols + b] : H[b * cols + a]);
      }
    double sum = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += kChunkRows) {
      const int64_t n = std::min(kChunkRows, rows - r0);
      const float* m = M + r0 * cols;
      gemm_detail::matmul_serial(m + p.i0, cols, 1, h, p.nt, 1, mh, p.nt, n, p.nt, p.mt);
      for (int64_t r = 0; r < n; ++r) sum += dot_f64(mh + r * p.nt, m + r * cols + p.j0, p.nt);
    }
    partial[size_t(t)] = p.i0 == p.j0 ? sum : 2.0 * sum;
  });
  double total = 0;
  for (double v : partial) total += v;
  return total;
}

}  // namespace mcw
