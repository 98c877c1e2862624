// Q8_0, Q4_0 and Q4_1 blocks compared byte for byte with blocks worked out by hand from
// the GGUF/ggml block definitions.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "engine/core/blocks.h"
#include "engine/core/tensor.h"

using namespace mcw;

template <class B>
static std::vector<uint8_t> bytes_of(const B& b) {
  std::vector<uint8_t> v(sizeof(B));
  std::memcpy(v.data(), &b, sizeof(B));
  return v;
}

TEST(Blocks, Q8_0ByHand) {
  // amax 127 gives d = 1.0 (f16 0x3C00); values round half away from zero.
  float x[32] = {127, -127, 2.5f, -2.5f, 0.49f, 1.5f, -0.5f, 100.4f};
  BlockQ8_0 b;
  quantize_q8_0(x, &b, 32);
  std::vector<uint8_t> want(34, 0);
  want[0] = 0x00, want[1] = 0x3C;
  const int8_t q[8] = {127, -127, 3, -3, 0, 2, -1, 100};
  for (int j = 0; j < 8; ++j) want[2 + j] = uint8_t(q[j]);
  EXPECT_EQ(bytes_of(b), want);
  float y[32];
  dequantize_q8_0(&b, y, 32);
  EXPECT_EQ(y[2], 3.0f);
  EXPECT_EQ(y[1], -127.0f);
}

TEST(Blocks, Q4_0ByHand) {
  // Largest magnitude -8 -> d = -8 / -8 = 1.0; q = x + 8.5 truncated, capped at 15.
  float x[32];
  for (int j = 0; j < 16; ++j) x[j] = float(j - 8), x[16 + j] = float(7 - j);
  BlockQ4_0 b;
  quantize_q4_0(x, &b, 32);
  std::vector<uint8_t> want = {0x00, 0x3C};
  for (int j = 0; j < 16; ++j) want.push_back(uint8_t(j | ((15 - j) << 4)));
  EXPECT_EQ(bytes_of(b), want);
  float y[32];
  dequantize_q4_0(&b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], x[j]);

  // Largest magnitude +8: the scale turns negative (0xBC00 = -1.0) and 8 maps to code 0.
  for (int j = 0; j < 32; ++j) x[j] = 0;
  x[0] = 8, x[1] = -7, x[17] = 3;
  quantize_q4_0(x, &b, 32);
  want = {0x00, 0xBC};
  for (int j = 0; j < 16; ++j) want.push_back(0x88);
  want[2 + 0] = 0x80;  // 8 -> 0.5 -> 0
  want[2 + 1] = 0x5F;  // -7 -> 15 low; 3 -> -3 + 8.5 -> 5 high
  EXPECT_EQ(bytes_of(b), want);
}

TEST(Blocks, Q4_1ByHand) {
  // min 2 (f16 0x4000), max 17 -> d = 1.0; q = (x - 2) + 0.5 truncated.
  float x[32];
  for (int j = 0; j < 16; ++j) x[j] = float(j + 2), x[16 + j] = float(j + 2) + 0.4f;
  x[31] = 17;
  BlockQ4_1 b;
  quantize_q4_1(x, &b, 32);
  std::vector<uint8_t> want = {0x00, 0x3C, 0x00, 0x40};
  for (int j = 0; j < 16; ++j) want.push_back(uint8_t(j | (j << 4)));
  EXPECT_EQ(bytes_of(b), want);
  float y[32];
  dequantize_q4_1(&b, y, 32);
  EXPECT_EQ(y[0], 2.0f);
  EXPECT_EQ(y[31], 17.0f);
}

TEST(Blocks, ZeroBlockHasZeroScale) {
  float x[32] = {};
  BlockQ4_0 b;
  quantize_q4_0(x, &b, 32);
  EXPECT_EQ(b.d & 0x7fff, 0);  // -0.0 as ggml writes it (0 / -8)
  float y[32];
  dequantize_q4_0(&b, y, 32);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

TEST(Tensor, ShapeValidation) {
  EXPECT_THROW(Tensor::zeros(DType::Q4_0, {3, 31}), std::exception);      // not whole blocks
  EXPECT_THROW(Tensor::zeros(DType::F32, {1LL << 40, 1LL << 40}), std::exception);  // overflow
  Tensor t = Tensor::zeros(DType::Q8_0, {2, 64});
  EXPECT_EQ(t.nbytes(), 4u * 34u);
}
