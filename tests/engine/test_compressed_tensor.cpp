#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <utility>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/error.h"
#include "engine/core/half.h"

using namespace mcw;

TEST(CompressedTensor, PackUnpackEveryWidth) {
  std::mt19937 rng(1);
  for (int bits = 1; bits <= 8; ++bits) {
    std::vector<uint8_t> q(1001);
    for (auto& v : q) v = uint8_t(rng() & ((1u << bits) - 1));
    const auto packed = pack_codes(q.data(), q.size(), bits);
    EXPECT_EQ(packed.size(), (q.size() * size_t(bits) + 7) / 8);
    std::vector<uint8_t> back(q.size());
    unpack_codes(packed.data(), q.size(), bits, back.data());
    EXPECT_EQ(back, q) << bits;
  }
  // 3-bit codes 5, 2, 7 -> bits 101 010 111 little-endian: 0b11010101, 0b1 -> d5 01
  const uint8_t q3[3] = {5, 2, 7};
  EXPECT_EQ(pack_codes(q3, 3, 3), (std::vector<uint8_t>{0xd5, 0x01}));
}

TEST(CompressedTensor, AffineDequantiseAndAccounting) {
  CompressedTensor c;
  c.rows = 2, c.cols = 4, c.coding = WeightCoding::Affine, c.bits = 2, c.group_size = 2;
  const uint8_t q[8] = {0, 1, 2, 3, 3, 2, 1, 0};
  c.codes = pack_codes(q, 8, 2);
  c.scales = {1, 2, 0.5f, 4};
  c.zeros = {1, 0, 2, 3};
  const Tensor w = c.dequantize();
  const std::vector<float> want = {-1, 0, 4, 6, 0.5f, 0, -8, -12};
  EXPECT_EQ(w.to_f32(), want);
  // 8 codes × 2 bits + 4 groups × (16-bit scale + 2-bit zero)
  EXPECT_EQ(c.storage_bits(), 8u * 2 + 4u * 18);
  c.symmetric = true;  // zero implied: 2
  EXPECT_EQ(c.dequantize().to_f32()[0], -2.0f);
  EXPECT_EQ(c.storage_bits(), 8u * 2 + 4u * 16);
}

TEST(CompressedTensor, MaskOutliersAndNm) {
  const std::vector<float> v = {1, 0, 3, 0, 0, 6, 0, 8};
  CompressedTensor c = dense_tensor(Tensor::from_f32(v, {2, 4}), "w");
  c.mask = mask_from_values(v.data(), v.size());
  EXPECT_EQ(c.kept_count(), 4);
  EXPECT_EQ(c.storage_bits(), 4u * 16 + 8);  // values + bitmask
  c.nm_n = 2, c.nm_m = 4;
  EXPECT_EQ(c.storage_bits(), 4u * 16 + 4 * 2);  // values + 2-bit positions
  c.outlier_index = {1};
  c.outlier_value = {f32_to_f16(-2.5f)};
  EXPECT_EQ(c.dequantize().to_f32()[1], -2.5f);
  EXPECT_EQ(c.describe(), "f16, 2:4 sparse, 1 outliers");
}

TEST(CompressedTensor, InputScaleDividesColumnsAndCosts16BitsEach) {
  // 2 x 4 symmetric 2-bit codes, one group per row: w = scale·(q − 2).
  CompressedTensor t;
  t.name = "w", t.rows = 2, t.cols = 4, t.coding = WeightCoding::Affine;
  t.bits = 2, t.group_size = 4, t.symmetric = true;
  const uint8_t q[8] = {0, 1, 2, 3, 3, 2, 1, 0};
  t.codes = pack_codes(q, 8, 2);
  t.scales = {0.5f, 2.0f};
  const uint64_t bits_plain = t.storage_bits();
  const std::string desc_plain = t.describe();
  t.input_scale = {1.0f, 2.0f, 4.0f, 0.5f};
  // By hand: row 0 = 0.5·{-2,-1,0,1} / s, row 1 = 2·{1,0,-1,-2} / s.
  const std::vector<float> want = {-1.0f, -0.25f, 0.0f, 1.0f, 2.0f, 0.0f, -0.5f, -8.0f};
  EXPECT_EQ(t.dequantize().to_f32(), want);
  EXPECT_EQ(t.storage_bits(), bits_plain + 4 * 16);
  EXPECT_EQ(t.describe(), desc_plain + ", input-scaled");
  t.input_scale.pop_back();
  EXPECT_THROW(t.dequantize(), Error);
}

// Code i of a little-endian bitstream, one bit at a time: the definition pack_codes writes.
static uint8_t code_at(const std::vector<uint8_t>& packed, size_t i, int bits) {
  uint8_t v = 0;
  for (int b = 0; b < bits; ++b) {
    const size_t bit = i * size_t(bits) + size_t(b);
    v |= uint8_t(((packed[bit >> 3] >> (bit & 7)) & 1) << b);
  }
  return v;
}

TEST(CompressedTensor, UnpackFromAnyCodeEveryWidth) {
  std::mt19937 rng(2);
  for (int bits = 1; bits <= 8; ++bits) {
    std::vector<uint8_t> q(517);
    for (auto& v : q) v = uint8_t(rng() & ((1u << bits) - 1));
    const auto packed = pack_codes(q.data(), q.size(), bits);
    for (size_t first : {size_t(0), size_t(1), size_t(7), size_t(13), size_t(500)}) {
      const size_t n = q.size() - first;  // up to the stream's last byte
      std::vector<uint8_t> got(n);
      unpack_codes_from(packed.data(), first, n, bits, got.data());
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], code_at(packed, first + i, bits)) << bits << " " << first + i;
    }
  }
}

// Long streams are packed in parallel chunks: every code, across chunk borders, reads back
// bit by bit, and bits above the width are ignored as the definition says.
TEST(CompressedTensor, PackLongStreamsEveryWidth) {
  std::mt19937 rng(3);
  std::vector<uint8_t> q(3 * 65536 + 5);
  for (auto& v : q) v = uint8_t(rng());
  for (int bits = 1; bits <= 8; ++bits) {
    const auto packed = pack_codes(q.data(), q.size(), bits);
    ASSERT_EQ(packed.size(), (q.size() * size_t(bits) + 7) / 8);
    for (size_t i = 0; i < q.size(); ++i)
      ASSERT_EQ(code_at(packed, i, bits), q[i] & ((1u << bits) - 1)) << bits << " " << i;
  }
}

// Rows of an affine layer with act-order groups, a mask, outliers and an input scale, at a
// width whose rows do not start on a byte: each value against the formula written out.
TEST(CompressedTensor, DequantizeRowsEqualsTheFormulaPerWeight) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.5f, 2.0f);
  for (bool sym : {false, true})
    for (int bits : {2, 3, 4}) {
      CompressedTensor t;
      t.name = "w", t.rows = 9, t.cols = 13, t.coding = WeightCoding::Affine;
      t.bits = bits, t.group_size = 5, t.symmetric = sym;
      std::vector<uint8_t> q(size_t(t.rows * t.cols));
      for (auto& v : q) v = uint8_t(rng() % (1u << bits));
      t.codes = pack_codes(q.data(), q.size(), bits);
      t.g_idx.resize(size_t(t.cols));
      for (auto& g : t.g_idx) g = int32_t(rng() % 3);
      t.g_idx[0] = 0, t.g_idx[1] = 1, t.g_idx[2] = 2;  // three groups
      t.scales.resize(size_t(t.rows * 3)), t.zeros.resize(t.scales.size());
      for (size_t i = 0; i < t.scales.size(); ++i) t.scales[i] = u(rng), t.zeros[i] = float(rng() % (1u << bits));
      if (sym) t.zeros.clear();
      std::vector<float> kept_values(q.size());
      for (auto& v : kept_values) v = float(rng() % 4);  // 0: pruned
      t.mask = mask_from_values(kept_values.data(), kept_values.size());
      t.outlier_index = {4, 40, 116};
      t.outlier_value = {f32_to_f16(7.5f), f32_to_f16(-3.0f), f32_to_f16(0.25f)};
      for (int64_t c = 0; c < t.cols; ++c) t.input_scale.push_back(u(rng));

      auto want = [&](int64_t r, int64_t c) {
        const size_t i = size_t(r * t.cols + c), g = size_t(r * 3 + t.g_idx[size_t(c)]);
        float w = t.scales[g] * (float(q[i]) - (sym ? float(1 << (bits - 1)) : t.zeros[g]));
        if (kept_values[i] == 0) w = 0;
        for (size_t k = 0; k < t.outlier_index.size(); ++k)
          if (t.outlier_index[k] == i) w = f16_to_f32(t.outlier_value[k]);
        return w / t.input_scale[size_t(c)];
      };
      for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, 9}, {3, 4}, {2, 8}, {8, 9}, {5, 5}}) {
        std::vector<float> got(size_t((r1 - r0) * t.cols));
        t.dequantize_rows(r0, r1, got.data());
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = 0; c < t.cols; ++c)
            ASSERT_EQ(got[size_t((r - r0) * t.cols + c)], want(r, c)) << bits << " " << r << "," << c;
      }
      EXPECT_THROW(t.dequantize_rows(4, 10, nullptr), std::out_of_range);
    }
}
