#include "engine/compress/compressed_tensor.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>

#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/kernels/gemm.h"

namespace mcw {

std::vector<uint8_t> pack_codes(const uint8_t* q, size_t n, int bits) {
  std::vector<uint8_t> out((n * size_t(bits) + 7) / 8);
  // Chunks of a multiple of 8 codes start on a byte, so they pack independently; within
  // one, codes gather in a 64-bit accumulator that spills whole bytes.
  constexpr size_t kChunk = size_t(1) << 16;
  const uint64_t mask = (uint64_t(1) << bits) - 1;
  tbb::parallel_for(size_t(0), (n + kChunk - 1) / kChunk, [&](size_t c) {
    const size_t end = std::min(n, (c + 1) * kChunk);
    uint8_t* o = out.data() + c * kChunk * size_t(bits) / 8;
    uint64_t acc = 0;
    int have = 0;
    for (size_t i = c * kChunk; i < end; ++i) {
      acc |= (q[i] & mask) << have;
      for (have += bits; have >= 8; have -= 8, acc >>= 8) *o++ = uint8_t(acc);
    }
    if (have > 0) *o = uint8_t(acc);
  });
  return out;
}

void unpack_codes(const uint8_t* packed, size_t n, int bits, uint8_t* q) {
  unpack_codes_from(packed, 0, n, bits, q);
}

void unpack_codes_from(const uint8_t* packed, size_t first, size_t n, int bits, uint8_t* q) {
  // A code of at most 8 bits spans at most two bytes: read both (when the second is part of
  // the stream) and shift, instead of a loop over bits.
  const size_t end_byte = ((first + n) * size_t(bits) + 7) / 8;
  const unsigned mask = (1u << bits) - 1;
  size_t bit = first * size_t(bits);
  for (size_t i = 0; i < n; ++i, bit += size_t(bits)) {
    const size_t byte = bit >> 3;
    unsigned v = packed[byte];
    if (byte + 1 < end_byte) v |= unsigned(packed[byte + 1]) << 8;
    q[i] = uint8_t((v >> (bit & 7)) & mask);
  }
}

std::vector<uint8_t> mask_from_values(const float* w, size_t n) {
  std::vector<uint8_t> m((n + 7) / 8, 0);
  for (size_t i = 0; i < n; ++i)
    if (w[i] != 0.0f) m[i >> 3] |= uint8_t(1u << (i & 7));
  return m;
}

CompressedTensor dense_tensor(const Tensor& w, std::string name) {
  if (w.ndim() != 2 || w.dtype() != DType::F32)
    throw Error(name, "expected a 2-D f32 weight, got " + shape_string(w.shape()));
  CompressedTensor c;
  c.name = std::move(name);
  c.rows = w.dim(0), c.cols = w.dim(1);
  c.dense = Tensor::from_f32(w.to_f32(), w.shape(), c.name);
  return c;
}

int64_t CompressedTensor::groups() const {
  if (coding != WeightCoding::Affine && coding != WeightCoding::Codebook) return 0;
  if (!g_idx.empty()) {
    int32_t mx = 0;
    for (int32_t g : g_idx) mx = std::max(mx, g);
    return int64_t(mx) + 1;
  }
  return (cols + group_size - 1) / group_size;
}

int64_t CompressedTensor::group_of(int64_t col) const {
  return g_idx.empty() ? col / group_size : g_idx[size_t(col)];
}

int64_t CompressedTensor::kept_count() const {
  if (mask.empty()) return rows * cols;
  int64_t n = 0;
  for (uint8_t b : mask) n += std::popcount(b);
  return n;
}

namespace {

// What follows the coding in dequantize(), for rows [r0, r1) in dst: pruned weights zeroed,
// outliers written, columns divided by the input scale.
void finish_rows(const CompressedTensor& t, int64_t r0, int64_t r1, float* dst) {
  const size_t first = size_t(r0 * t.cols), n = size_t((r1 - r0) * t.cols);
  if (!t.mask.empty())
    for (size_t i = 0; i < n; ++i)
      if (!t.kept(int64_t(first + i))) dst[i] = 0.0f;
  for (size_t k = 0; k < t.outlier_index.size(); ++k)
    if (const size_t i = t.outlier_index[k]; i >= first && i - first < n)
      dst[i - first] = f16_to_f32(t.outlier_value[k]);
  if (!t.input_scale.empty()) {
    if (t.input_scale.size() != size_t(t.cols))
      throw Error(t.name, "input scale has " + std::to_string(t.input_scale.size()) +
                              " entries for " + std::to_string(t.cols) + " columns");
    // A division, not a multiplication by 1/s: AWQ's effective weight always was Ŵ/s.
    for (int64_t r = 0; r < r1 - r0; ++r)
      for (int64_t c = 0; c < t.cols; ++c) dst[r * t.cols + c] /= t.input_scale[size_t(c)];
  }
}

}  // namespace

Tensor CompressedTensor::dequantize() const {
  Tensor out = Tensor::zeros(DType::F32, {rows, cols}, name);
  float* w = out.mutable_as<float>();
  if (coding != WeightCoding::LowRank) {
    dequantize_rows(0, rows, w);
    return out;
  }
  matmul(lr_a.as<float>(), lr_b.as<float>(), w, rows, cols, rank);
  finish_rows(*this, 0, rows, w);
  return out;
}

void CompressedTensor::dequantize_rows(int64_t r0, int64_t r1, float* dst) const {
  if (r0 < 0 || r1 > rows || r0 > r1) throw std::out_of_range("dequantize_rows: rows out of range");
  const size_t first = size_t(r0 * cols), n = size_t((r1 - r0) * cols);
  switch (coding) {
    case WeightCoding::Dense:
      std::memcpy(dst, dense.as<float>() + first, n * sizeof(float));
      break;
    case WeightCoding::Affine:
    case WeightCoding::Codebook: {
      std::vector<uint8_t> q(static_cast<size_t>(cols));
      std::vector<int64_t> group(static_cast<size_t>(cols));
      for (int64_t c = 0; c < cols; ++c) group[size_t(c)] = group_of(c);
      const int64_t G = groups(), levels = int64_t(1) << bits;
      for (int64_t r = r0; r < r1; ++r) {
        unpack_codes_from(codes.data(), size_t(r * cols), size_t(cols), bits, q.data());
        float* w = dst + (r - r0) * cols;
        const size_t g0 = size_t(r * G);
        if (coding == WeightCoding::Affine) {
          for (int64_t c = 0; c < cols; ++c) {
            const size_t g = g0 + size_t(group[size_t(c)]);
            w[c] = scales[g] * (float(q[size_t(c)]) - zero_point(g));
          }
        } else {
          for (int64_t c = 0; c < cols; ++c)
            w[c] = codebook[(g0 + size_t(group[size_t(c)])) * size_t(levels) + q[size_t(c)]];
        }
      }
      break;
    }
    case WeightCoding::LowRank:
      matmul(lr_a.as<float>() + r0 * rank, lr_b.as<float>(), dst, r1 - r0, cols, rank);
      break;
  }
  finish_rows(*this, r0, r1, dst);
}

uint64_t CompressedTensor::storage_bits() const {
  const uint64_t n = uint64_t(rows * cols), kept_n = uint64_t(kept_count());
  uint64_t bitsum = 0;
  switch (coding) {
    case WeightCoding::Dense: bitsum = kept_n * 16; break;
    case WeightCoding::Affine:
      // Codes of pruned weights need not be stored when a mask says where the rest are.
      bitsum = kept_n * uint64_t(bits) + uint64_t(rows * groups()) * (16 + (symmetric ? 0 : uint64_t(bits)));
      break;
    case WeightCoding::Codebook:
      bitsum = kept_n * uint64_t(bits) + uint64_t(rows * groups()) * (uint64_t(1) << bits) * 16;
      break;
    case WeightCoding::LowRank: bitsum = uint64_t((rows + cols) * rank) * 16; break;
  }
  if (!g_idx.empty()) bitsum += uint64_t(cols) * 32;
  if (!mask.empty()) {
    if (nm_m > 0) bitsum += kept_n * uint64_t(std::bit_width(unsigned(nm_m - 1)));
    else bitsum += n;  // bitmask
  }
  bitsum += uint64_t(outlier_index.size()) * (32 + 16);
  bitsum += uint64_t(input_scale.size()) * 16;
  return bitsum;
}

void CompressedTensor::drop_payload() {
  dense = lr_a = lr_b = Tensor();
  // swap with empties: clear() would keep the capacity
  std::vector<uint8_t>().swap(codes);
  std::vector<float>().swap(scales), std::vector<float>().swap(zeros);
  std::vector<float>().swap(codebook), std::vector<float>().swap(input_scale);
  std::vector<int32_t>().swap(g_idx);
  std::vector<uint8_t>().swap(mask);
  std::vector<uint32_t>().swap(outlier_index);
  std::vector<uint16_t>().swap(outlier_value);
}

std::string CompressedTensor::describe() const {
  std::string s;
  switch (coding) {
    case WeightCoding::Dense: s = "f16"; break;
    case WeightCoding::Affine:
      s = "int" + std::to_string(bits) +
          (group_size >= cols ? " per-channel" : " g" + std::to_string(group_size)) +
          (symmetric ? " sym" : " asym");
      break;
    case WeightCoding::Codebook: s = "codebook " + std::to_string(bits) + "-bit"; break;
    case WeightCoding::LowRank: s = "low-rank r" + std::to_string(rank); break;
  }
  if (nm_m > 0) s += ", " + std::to_string(nm_n) + ":" + std::to_string(nm_m) + " sparse";
  else if (!mask.empty())
    s += ", " + std::to_string(int(100.0 * (1 - double(kept_count()) / double(rows * cols)) + 0.5)) + "% sparse";
  if (!outlier_index.empty()) s += ", " + std::to_string(outlier_index.size()) + " outliers";
  if (!input_scale.empty()) s += ", input-scaled";
  return s;
}

}  // namespace mcw
