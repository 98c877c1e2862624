// Int8GemmWeight (int8_gemm.h) on every kernel this CPU runs, against f64 sums over
// CompressedTensor::dequantize():
//  - with x rounded as the header documents (per row and block — at most 256 of a group's
//    columns in increasing order — d = max|x|/127 and codes round(x/d), halves away from 0),
//    the product equals the f64 sum up to f32 rounding: this pins the packing of every code
//    width, the blocks, act-order's scattered groups, the scales and offsets;
//  - against the exact x the error stays within Σ_block Σ|w|·d/2;
//  - bias, accumulate, m and rows that are not whole tiles; codings it cannot hold refused.
// transpose_f32 against its definition, on both of its paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/int8_gemm.h"
#include "engine/kernels/transpose.h"
#include "quant_test_util.h"

using namespace mcw;
using quant_test::gaussian;
using quant_test::random_affine;

namespace {

struct Restore {
  ~Restore() { set_simd_level(SimdLevel::Avx512); }
};

// The levels that change the path taken: Generic, and AVX-512 where the CPU has it.
std::vector<SimdLevel> levels() {
  std::vector<SimdLevel> out{SimdLevel::Generic};
  set_simd_level(SimdLevel::Avx512);
  if (cpu_features().level == SimdLevel::Avx512) out.push_back(SimdLevel::Avx512);
  return out;
}

struct Reference {
  std::vector<double> rounded, exact, bound, mag;  // per (i, r)
};

Reference reference(const CompressedTensor& t, const std::vector<float>& X, int64_t m) {
  const Tensor wt = t.dequantize();
  const float* w = wt.as<float>();
  const int64_t R = t.rows, C = t.cols;
  // Blocks: each group's columns in increasing order, 256 at a time.
  std::vector<std::vector<int64_t>> blocks;
  for (int64_t g = 0; g < t.groups(); ++g) {
    std::vector<int64_t> cols;
    for (int64_t c = 0; c < C; ++c)
      if (t.group_of(c) == g) cols.push_back(c);
    for (size_t c0 = 0; c0 < cols.size(); c0 += 256)
      blocks.emplace_back(cols.begin() + std::ptrdiff_t(c0),
                          cols.begin() + std::ptrdiff_t(std::min(cols.size(), c0 + 256)));
  }
  Reference ref;
  for (int64_t i = 0; i < m; ++i) {
    const float* x = X.data() + i * C;
    std::vector<double> xr(static_cast<size_t>(C)), dx(static_cast<size_t>(C));
    for (const auto& b : blocks) {
      float amax = 0;
      for (int64_t c : b) amax = std::max(amax, std::fabs(x[c]));
      const float d = amax / 127.0f;
      for (int64_t c : b) {
        xr[size_t(c)] = amax > 0 ? double(std::lround(x[c] * (127.0f / amax))) * d : 0.0;
        dx[size_t(c)] = d;
      }
    }
    for (int64_t r = 0; r < R; ++r) {
      double rounded = 0, exact = 0, bound = 0, mag = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double wv = w[r * C + c];
        rounded += wv * xr[size_t(c)];
        exact += wv * x[c];
        bound += std::fabs(wv) * dx[size_t(c)] / 2;
        mag += std::fabs(wv * x[c]);
      }
      ref.rounded.push_back(rounded), ref.exact.push_back(exact);
      ref.bound.push_back(bound), ref.mag.push_back(mag);
    }
  }
  return ref;
}

void check(const CompressedTensor& t, int64_t m, uint32_t seed, bool zero_row = false) {
  const std::optional<Int8GemmWeight> w = Int8GemmWeight::from_compressed(t);
  ASSERT_TRUE(w) << t.describe();
  EXPECT_EQ(w->rows(), t.rows);
  EXPECT_EQ(w->cols(), t.cols);
  const int64_t R = t.rows, C = t.cols;
  std::vector<float> X = gaussian(size_t(m * C), seed);
  if (zero_row) std::fill(X.begin(), X.begin() + C, 0.0f);  // d = 0 for its blocks
  const std::vector<float> bias = gaussian(size_t(R), seed + 1);
  const Reference ref = reference(t, X, m);
  Restore restore;
  for (SimdLevel level : levels()) {
    set_simd_level(level);
    SCOPED_TRACE(simd_level_name(level));
    std::vector<float> Y(size_t(m * R), 7.0f);
    w->matmul(X.data(), C, Y.data(), R, m);
    for (int64_t k = 0; k < m * R; ++k) {
      const double got = Y[size_t(k)], tol = 2e-6 * ref.mag[size_t(k)] + 1e-6;
      ASSERT_NEAR(got, ref.rounded[size_t(k)], tol) << "row " << k / R << " out " << k % R;
      ASSERT_LE(std::fabs(got - ref.exact[size_t(k)]), ref.bound[size_t(k)] + tol);
    }
    // With a bias, added to what Y held (a wider Y: ldy > rows).
    const int64_t ldy = R + 3;
    std::vector<float> Z(size_t(m * ldy), 1.5f);
    w->matmul(X.data(), C, Z.data(), ldy, m, bias.data(), true);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < ldy; ++r) {
        const float z = Z[size_t(i * ldy + r)];
        if (r >= R) {
          ASSERT_EQ(z, 1.5f) << "past the rows";
          continue;
        }
        ASSERT_NEAR(z, 1.5 + bias[size_t(r)] + Y[size_t(i * R + r)], 1e-5 * (1 + std::fabs(z)));
      }
  }
}

}  // namespace

TEST(Int8Gemm, EveryWidthGroupingAndShape) {
  std::mt19937 rng(3);
  for (int bits : {2, 3, 4, 8})
    for (bool sym : {false, true})
      for (int64_t group : {int64_t(32), int64_t(128), int64_t(0)}) {
        const int64_t rows = 37, cols = group == 0 ? 300 : 384;  // 300: blocks of 256 + 44
        SCOPED_TRACE(::testing::Message() << bits << "-bit sym " << sym << " group " << group);
        const CompressedTensor t = random_affine(rows, cols, bits, group ? group : cols, sym, rng);
        for (int64_t m : {1, 8, 13}) check(t, m, uint32_t(bits * 100 + m));
      }
}

TEST(Int8Gemm, NarrowRowsAndAZeroRowOfX) {
  std::mt19937 rng(4);
  const CompressedTensor t = random_affine(16, 27, 4, 27, false, rng);  // a 3 × 3 × 3 stem
  check(t, 5, 21, true);
}

TEST(Int8Gemm, ActOrderGroupsAreScattered) {
  std::mt19937 rng(5);
  CompressedTensor t = random_affine(20, 256, 4, 64, false, rng);
  t.g_idx.resize(256);
  for (int64_t c = 0; c < 256; ++c) t.g_idx[size_t(c)] = int32_t((c * 7 + c / 5) % 4);
  check(t, 9, 11);
}

TEST(Int8Gemm, CodingsItCannotHoldAreRefused) {
  std::mt19937 rng(9);
  const CompressedTensor base = random_affine(4, 64, 4, 32, false, rng);
  CompressedTensor masked = base, outliers = base, scaled = base, dense = base;
  masked.mask.assign(32, 0xff);
  outliers.outlier_index = {3};
  outliers.outlier_value = {0x3c00};
  scaled.input_scale.assign(64, 2.0f);
  dense.coding = WeightCoding::Dense;
  for (const CompressedTensor* t : {&masked, &outliers, &scaled, &dense})
    EXPECT_FALSE(Int8GemmWeight::from_compressed(*t));
  EXPECT_TRUE(Int8GemmWeight::from_compressed(base));
}

TEST(Transpose, EveryShapeOnEveryPath) {
  Restore restore;
  for (SimdLevel level : levels()) {
    set_simd_level(level);
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{16, 16}, {32, 48}, {37, 21}, {5, 70}}) {
      const int64_t lds = cols + 2, ldd = rows + 1;
      const std::vector<float> src = gaussian(size_t(rows * lds), uint32_t(rows * cols));
      std::vector<float> dst(size_t(cols * ldd), -9.0f);
      transpose_f32(src.data(), lds, rows, cols, dst.data(), ldd);
      for (int64_t c = 0; c < cols; ++c)
        for (int64_t r = 0; r < ldd; ++r)
          ASSERT_EQ(dst[size_t(c * ldd + r)], r < rows ? src[size_t(r * lds + c)] : -9.0f)
              << simd_level_name(level) << " " << rows << "x" << cols << " at " << r << "," << c;
    }
  }
}
