// The GGUF block types MCW reads but does not write (kquant_blocks.h): each block is packed
// here from explicit parameters (scales, mins, codes) following the layout GGUF documents,
// then decoded by to_f32 and compared with the value the parameters mean, computed with
// ggml's float operations. (Checked once more against ggml d99724f itself on 4000 random
// blocks of each type: every value bit for bit equal; see the issue note.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "engine/core/blocks.h"
#include "engine/core/half.h"
#include "engine/core/kquant_blocks.h"
#include "engine/kernels/block_gemv.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/io/gguf.h"
#include "engine/export/gguf_export.h"
#include "engine/model/llama_save.h"
#include "llama_reference.h"
#include "llama_test_util.h"

using namespace mcw;

namespace {

std::mt19937 rng(2026);
int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
uint16_t f16(float lo, float hi) { return f32_to_f16(std::uniform_real_distribution<float>(lo, hi)(rng)); }

template <class Block>
std::vector<float> decode(DType t, const Block& b) {
  std::vector<float> y(size_t(dtype_info(t).block));
  to_f32(t, &b, y.data(), y.size());
  return y;
}

void expect_same(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "value " << i;
}

}  // namespace

TEST(KquantBlocks, SizesAndGgmlTypes) {
  EXPECT_EQ(dtype_info(DType::Q4_K).block, 256);
  EXPECT_EQ(dtype_info(DType::Q6_K).block_bytes, 210);
  EXPECT_EQ(dtype_bytes(DType::Q4_K, 4096 * 256), 4096u * 144);
  EXPECT_FALSE(dtype_bytes(DType::Q2_K, 100).has_value());  // not whole super-blocks
}

TEST(KquantBlocks, FiveBitLegacyTypes) {
  for (int trial = 0; trial < 20; ++trial) {
    int q[32];
    for (int& v : q) v = uniform(0, 31);
    BlockQ5_1 b1{};
    b1.d = f16(0.001f, 0.1f), b1.m = f16(-1, 1);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      b1.qs[j] = uint8_t((q[j] & 15) | ((q[j + 16] & 15) << 4));
      qh |= uint32_t(q[j] >> 4) << j;
      qh |= uint32_t(q[j + 16] >> 4) << (j + 16);
    }
    std::memcpy(b1.qh, &qh, 4);
    BlockQ5_0 b0{};
    b0.d = b1.d;
    std::memcpy(b0.qh, b1.qh, 4);
    std::memcpy(b0.qs, b1.qs, 16);
    std::vector<float> w0(32), w1(32);
    for (int i = 0; i < 32; ++i) {
      w0[size_t(i)] = float(q[i] - 16) * f16_to_f32(b0.d);
      w1[size_t(i)] = float(q[i]) * f16_to_f32(b1.d) + f16_to_f32(b1.m);
    }
    expect_same(decode(DType::Q5_0, b0), w0);
    expect_same(decode(DType::Q5_1, b1), w1);
  }
}

TEST(KquantBlocks, Q2K) {
  for (int trial = 0; trial < 10; ++trial) {
    BlockQ2_K b{};
    b.d = f16(0.001f, 0.1f), b.dmin = f16(0.001f, 0.1f);
    int sc[16], mn[16], q[256];
    for (int s = 0; s < 16; ++s) sc[s] = uniform(0, 15), mn[s] = uniform(0, 15), b.scales[s] = uint8_t(sc[s] | (mn[s] << 4));
    for (int& v : q) v = uniform(0, 3);
    // Value v = 128·half + 32·plane + 16·part + l sits in bits 2·plane of qs[32·half + 16·part + l].
    for (int v = 0; v < 256; ++v) {
      const int half = v / 128, plane = (v % 128) / 32, part = (v % 32) / 16, l = v % 16;
      b.qs[32 * half + 16 * part + l] |= uint8_t(q[v] << (2 * plane));
    }
    std::vector<float> want(256);
    for (int v = 0; v < 256; ++v) {
      const int s = v / 16;
      want[size_t(v)] = f16_to_f32(b.d) * float(sc[s]) * float(q[v]) - f16_to_f32(b.dmin) * float(mn[s]);
    }
    expect_same(decode(DType::Q2_K, b), want);
  }
}

TEST(KquantBlocks, Q3K) {
  for (int trial = 0; trial < 10; ++trial) {
    BlockQ3_K b{};
    b.d = f16(0.001f, 0.1f);
    int sc[16], q[256];
    for (int s = 0; s < 16; ++s) {
      sc[s] = uniform(0, 63);  // 6 bits: low 4 in bytes 0-7 (nibbles), high 2 in bytes 8-11
      b.scales[s % 8] |= uint8_t((sc[s] & 15) << (4 * (s / 8)));
      b.scales[8 + s % 4] |= uint8_t((sc[s] >> 4) << (2 * (s / 4)));
    }
    for (int& v : q) v = uniform(-4, 3);  // low 2 bits in qs as Q2_K, the third in hmask
    for (int v = 0; v < 256; ++v) {
      const int half = v / 128, plane = (v % 128) / 32, i = v % 32;
      const int low = (q[v] + 4) & 3, high = q[v] >= 0;  // q = low − (high ? 0 : 4)
      b.qs[32 * half + i] |= uint8_t(low << (2 * plane));
      if (high) b.hmask[i] |= uint8_t(1 << (4 * half + plane));
    }
    std::vector<float> want(256);
    for (int v = 0; v < 256; ++v) want[size_t(v)] = f16_to_f32(b.d) * float(sc[v / 16] - 32) * float(q[v]);
    expect_same(decode(DType::Q3_K, b), want);
  }
}

// Q4_K and Q5_K: eight sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes.
template <class Block>
void check_k4(DType t, bool fifth) {
  for (int trial = 0; trial < 10; ++trial) {
    Block b{};
    b.d = f16(0.001f, 0.1f), b.dmin = f16(0.001f, 0.1f);
    int sc[8], mn[8], q[256];
    for (int s = 0; s < 8; ++s) sc[s] = uniform(0, 63), mn[s] = uniform(0, 63);
    for (int j = 0; j < 4; ++j) {
      b.scales[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
      b.scales[j + 4] = uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
      b.scales[j + 8] = uint8_t((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
    for (int& v : q) v = uniform(0, fifth ? 31 : 15);
    for (int v = 0; v < 256; ++v) {  // sub-block s: bytes 32·(s/2).., low nibble for even s
      const int s = v / 32, l = v % 32;
      b.qs[32 * (s / 2) + l] |= uint8_t((q[v] & 15) << (4 * (s % 2)));
      if constexpr (requires { b.qh; })
        if (q[v] >> 4) b.qh[l] |= uint8_t(1 << s);
    }
    std::vector<float> want(256);
    for (int v = 0; v < 256; ++v) {
      const int s = v / 32;
      want[size_t(v)] = f16_to_f32(b.d) * float(sc[s]) * float(q[v]) - f16_to_f32(b.dmin) * float(mn[s]);
    }
    expect_same(decode(t, b), want);
  }
}

TEST(KquantBlocks, Q4KAndQ5K) {
  check_k4<BlockQ4_K>(DType::Q4_K, false);
  check_k4<BlockQ5_K>(DType::Q5_K, true);
}

TEST(KquantBlocks, Q6K) {
  for (int trial = 0; trial < 10; ++trial) {
    BlockQ6_K b{};
    b.d = f16(0.0001f, 0.01f);
    int q[256];
    for (int8_t& s : b.scales) s = int8_t(uniform(-128, 127));
    for (int& v : q) v = uniform(0, 63);
    // In each half of 128: value 32·p + l keeps its low nibble in ql[64·half + l + 32·(p%2)]
    // (high nibble when p >= 2) and its top 2 bits in bits 2p of qh[32·half + l].
    for (int v = 0; v < 256; ++v) {
      const int half = v / 128, p = (v % 128) / 32, l = v % 32;
      b.ql[64 * half + l + 32 * (p % 2)] |= uint8_t((q[v] & 15) << (4 * (p / 2)));
      b.qh[32 * half + l] |= uint8_t((q[v] >> 4) << (2 * p));
    }
    std::vector<float> want(256);
    for (int v = 0; v < 256; ++v) {
      const int half = v / 128, p = (v % 128) / 32, l = v % 32;
      const int s = 8 * half + l / 16 + 2 * p;  // sub-blocks of 16
      want[size_t(v)] = f16_to_f32(b.d) * float(b.scales[s]) * float(q[v] - 32);
    }
    expect_same(decode(DType::Q6_K, b), want);
  }
}

TEST(KquantBlocks, Iq4NlAndXs) {
  for (int trial = 0; trial < 10; ++trial) {
    BlockIQ4_NL nl{};
    nl.d = f16(0.001f, 0.1f);
    int idx[256];
    for (int& v : idx) v = uniform(0, 15);
    for (int j = 0; j < 16; ++j) nl.qs[j] = uint8_t(idx[j] | (idx[j + 16] << 4));
    std::vector<float> want(32);
    for (int i = 0; i < 32; ++i) want[size_t(i)] = f16_to_f32(nl.d) * float(kIq4Grid[idx[i]]);
    expect_same(decode(DType::IQ4_NL, nl), want);

    BlockIQ4_XS xs{};
    xs.d = f16(0.0001f, 0.01f);
    int ls[8];
    for (int ib = 0; ib < 8; ++ib) {
      ls[ib] = uniform(0, 63);
      xs.scales_l[ib / 2] |= uint8_t((ls[ib] & 15) << (4 * (ib % 2)));
      xs.scales_h |= uint16_t((ls[ib] >> 4) << (2 * ib));
    }
    for (int v = 0; v < 256; ++v) {
      const int ib = v / 32, j = v % 32;
      xs.qs[16 * ib + j % 16] |= uint8_t(idx[v] << (4 * (j / 16)));
    }
    std::vector<float> w(256);
    for (int v = 0; v < 256; ++v)
      w[size_t(v)] = f16_to_f32(xs.d) * float(ls[v / 32] - 32) * float(kIq4Grid[idx[v]]);
    expect_same(decode(DType::IQ4_XS, xs), w);
  }
}

// A GGUF whose linears are Q4_K and Q6_K (as a Q4_K_M file has them) loads, stays in its
// blocks (views of the file), and computes what the model of its decoded weights computes.
TEST(KquantBlocks, GgufModelWithKquantWeightsRunsAsItsDecode) {
  LlamaConfig c = test::tiny_config(4, 2);
  c.dim = 256, c.head_dim = 64, c.hidden_dim = 256, c.n_layers = 2, c.vocab_size = 64;
  const LlamaModel f32 = test::random_llama(c, 5);
  const std::string plain = testing::TempDir() + "/kq_plain.gguf", kq = testing::TempDir() + "/kq.gguf";
  save_llama_gguf(f32, plain, DType::F32);
  const GGUFFile src = read_gguf(plain);
  std::vector<Tensor> tensors;
  std::vector<std::vector<uint8_t>> bytes;  // keeps the packed blocks alive until written
  for (const Tensor& t : src.tensors) {
    const bool linear = t.ndim() == 2 && t.name().starts_with("blk.");
    if (!linear) {
      tensors.push_back(t);
      continue;
    }
    const DType type = t.name().find("ffn_down") != std::string::npos ? DType::Q6_K : DType::Q4_K;
    const auto info = dtype_info(type);
    std::vector<uint8_t>& raw = bytes.emplace_back(size_t(t.numel() / info.block * info.block_bytes));
    for (auto& b : raw) b = uint8_t(rng());
    for (size_t off = 0; off < raw.size(); off += size_t(info.block_bytes)) {  // sane f16 scales
      const uint16_t d = f16(0.0001f, 0.002f), dmin = f16(0.0001f, 0.002f);
      if (type == DType::Q4_K) std::memcpy(&raw[off], &d, 2), std::memcpy(&raw[off + 2], &dmin, 2);
      else std::memcpy(&raw[off + 208], &d, 2);
    }
    tensors.push_back(Tensor::view(type, t.shape(), raw.data(), raw.size(), nullptr, t.name()));
  }
  write_gguf(kq, src.kvs, tensors);
  const LlamaModel packed = load_llama(kq);
  EXPECT_EQ(packed.layers[0].wq.dtype(), DType::Q4_K);
  EXPECT_EQ(packed.layers[1].w_down.dtype(), DType::Q6_K);
  EXPECT_FALSE(packed.layers[0].wv.writable());  // a view of the file, not a copy
  LlamaModel decoded = packed;
  for (auto& [name, t] : decoded.named_tensors()) *t = t->f32_copy();
  const std::vector<int32_t> toks = {3, 17, 0, 36, 5, 9, 21, 1};
  // Exact on f32 activations; with int8 activations (the default for m <= 8, as llama.cpp
  // runs these types) within the activations' rounding, which moves logits by well under 1%.
  set_int8_activations(false);
  const auto a = test::engine_logits(packed, toks), b = test::engine_logits(decoded, toks);
  set_int8_activations(true);
  const auto q = test::engine_logits(packed, toks);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(q.size(), b.size());
  double scale = 0, moved = 0;
  for (float v : b) scale = std::max(scale, double(std::fabs(v)));
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5 * scale) << i;
  for (size_t i = 0; i < q.size(); ++i) moved = std::max(moved, double(std::fabs(q[i] - b[i])));
  if (block_gemv_accelerated(DType::Q4_K)) {
    EXPECT_GT(moved, 0.0);  // the int8 path ran
  }
  EXPECT_LT(moved, 1e-2 * scale);
  std::filesystem::remove(plain);
  std::filesystem::remove(kq);
}
