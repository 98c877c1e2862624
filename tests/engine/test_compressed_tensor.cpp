#include <gtest/gtest.h>

#include <random>

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
