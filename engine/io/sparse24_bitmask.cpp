#include "engine/io/sparse24_bitmask.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/io/checkpoint_parts.h"

namespace mcw {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

size_t float_bytes(DType t) {
  return t == DType::F32 ? 4 : (t == DType::F16 || t == DType::BF16) ? 2 : 0;
}

// Value i of a 2- or 4-byte float array as its bits.
uint32_t bits_at(const void* v, size_t bytes, int64_t i) {
  if (bytes == 4) return static_cast<const uint32_t*>(v)[i];
  return static_cast<const uint16_t*>(v)[i];
}

bool is_zero(uint32_t bits, size_t bytes) {
  return (bits & (bytes == 4 ? 0x7fffffffu : 0x7fffu)) == 0;
}

// The 4-bit flags of group g of row r: its nonzeros, then its −0s, then its first +0s.
unsigned group_flags(const void* v, size_t bytes, int64_t row_start, int64_t g) {
  unsigned flags = 0;
  int n = 0;
  for (int pass = 0; pass < 3 && n < 2; ++pass)
    for (int k = 0; k < 4 && n < 2; ++k) {
      if (flags >> k & 1u) continue;
      const uint32_t b = bits_at(v, bytes, row_start + g * 4 + k);
      const bool take = pass == 0 ? !is_zero(b, bytes) : pass == 1 ? b != 0 : true;
      if (take) flags |= 1u << k, ++n;
    }
  return flags;
}

// Values of a validated layer: column c of row r is flagged by bit c%8 of byte c/8 of the
// row's bitmask, and (every group of 4 flagging exactly 2) its value, when flagged, is
// compressed[r, 2·(c/4) + flags of its group below c].
class Sparse24Decoder final : public TensorDecoder {
 public:
  Sparse24Decoder(Tensor compressed, Tensor bitmask, int64_t cols)
      : compressed_(std::move(compressed)), bitmask_(std::move(bitmask)), cols_(cols) {}

  void decode(size_t first, size_t count, float* dst) const override {
    const auto* mask = static_cast<const uint8_t*>(bitmask_.data());
    const int64_t mask_cols = bitmask_.dim(1), half = cols_ / 2;
    for (size_t done = 0; done < count;) {
      const int64_t r = int64_t((first + done) / size_t(cols_));
      const int64_t c0 = int64_t((first + done) % size_t(cols_));
      const int64_t c1 = std::min<int64_t>(cols_, c0 + int64_t(count - done));
      const uint8_t* row = mask + r * mask_cols;
      for (int64_t c = c0; c < c1; ++c) {
        const unsigned nibble = (row[c / 8] >> (c % 8 / 4 * 4)) & 15u;
        const unsigned below = nibble & ((1u << (c % 4)) - 1u);
        *dst++ = (nibble >> (c % 4) & 1u) ? scale_value(compressed_.dtype(), compressed_.data(),
                                                     r * half + c / 4 * 2 + std::popcount(below))
                                          : 0.0f;
      }
      done += size_t(c1 - c0);
    }
  }

  std::string describe() const override {
    return "compressed-tensors sparse-24-bitmask " + std::string(dtype_name(compressed_.dtype()));
  }

 private:
  Tensor compressed_, bitmask_;
  int64_t cols_;
};

}  // namespace

std::string sparse24_unfit(DType dtype, int64_t rows, int64_t cols, const void* values) {
  const size_t bytes = float_bytes(dtype);
  if (!bytes) return std::string(dtype_name(dtype)) + " values";
  if (cols % 4 != 0) return std::to_string(cols) + " columns, not a multiple of 4";
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols / 4; ++g) {
      int n = 0;
      for (int k = 0; k < 4; ++k)
        n += !is_zero(bits_at(values, bytes, r * cols + g * 4 + k), bytes);
      if (n > 2)
        return "row " + std::to_string(r) + ", columns " + std::to_string(g * 4) + ".." +
               std::to_string(g * 4 + 3) + " hold " + std::to_string(n) + " nonzeros";
    }
  return {};
}

void sparse24_compress(DType dtype, int64_t rows, int64_t cols, const void* values,
                       void* compressed, uint8_t* bitmask) {
  const size_t bytes = float_bytes(dtype);
  const int64_t mask_cols = ceil_div(cols, 8);
  std::memset(bitmask, 0, size_t(rows * mask_cols));
  auto* out = static_cast<uint8_t*>(compressed);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols / 4; ++g) {
      const unsigned flags = group_flags(values, bytes, r * cols, g);
      bitmask[r * mask_cols + g / 2] |= uint8_t(flags << (g % 2 * 4));
      for (int k = 0; k < 4; ++k)
        if (flags >> k & 1u) {
          std::memcpy(out,
                      static_cast<const uint8_t*>(values) + size_t(r * cols + g * 4 + k) * bytes,
                      bytes);
          out += bytes;
        }
    }
}

Tensor read_sparse24(const std::string& file, const std::string& prefix, const Tensor* shape,
                     const Tensor* compressed, const Tensor* bitmask) {
  const auto fail = [&](const std::string& tensor, const std::string& why) {
    return Error(file, "tensor '" + prefix + "." + tensor + "' (sparse-24-bitmask): " + why);
  };
  if (!shape) throw fail("shape", "missing beside the layer's other parts");
  if (!compressed) throw fail("compressed", "missing beside the layer's other parts");
  if (!bitmask) throw fail("bitmask", "missing beside the layer's other parts");

  if (shape->numel() != 2 || (shape->dtype() != DType::I64 && shape->dtype() != DType::I32))
    throw fail("shape", "is " + std::string(dtype_name(shape->dtype())) + " " +
                            shape_string(shape->shape()) + ", expected two integers");
  const auto at = [&](int k) {
    return shape->dtype() == DType::I64 ? static_cast<const int64_t*>(shape->data())[k]
                                        : int64_t(static_cast<const int32_t*>(shape->data())[k]);
  };
  const int64_t rows = at(0), cols = at(1);
  if (rows <= 0 || cols <= 0 || rows > (int64_t(1) << 31) || cols > (int64_t(1) << 31))
    throw fail("shape", "[" + std::to_string(rows) + ", " + std::to_string(cols) +
                            "] is not a matrix shape");
  if (cols % 4 != 0)
    throw fail("shape", "has " + std::to_string(cols) +
                            " columns, not whole groups of 4 (the format keeps 2 of every 4)");

  const DType ct = compressed->dtype();
  if (!float_bytes(ct) && ct != DType::I8 && ct != DType::F8_E4M3)
    throw fail("compressed", "has dtype " + std::string(dtype_name(ct)) +
                                 ", expected F16, BF16, F32, I8 or F8_E4M3");
  const Shape want_c{rows, cols / 2};
  if (compressed->shape() != want_c)
    throw fail("compressed", "has shape " + shape_string(compressed->shape()) + ", expected " +
                                 shape_string(want_c) + " (half of shape " +
                                 shape_string(Shape{rows, cols}) + ")");
  if (bitmask->dtype() != DType::U8 && bitmask->dtype() != DType::I8)
    throw fail("bitmask", "has dtype " + std::string(dtype_name(bitmask->dtype())) +
                              ", expected U8 (packed bits)");
  const Shape want_b{rows, ceil_div(cols, 8)};
  if (bitmask->shape() != want_b)
    throw fail("bitmask", "has shape " + shape_string(bitmask->shape()) + ", expected " +
                              shape_string(want_b) + " (a bit per column of shape " +
                              shape_string(Shape{rows, cols}) + ")");
  const auto* mask = static_cast<const uint8_t*>(bitmask->data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols / 4; ++g) {
      const int n = std::popcount(unsigned(mask[r * want_b[1] + g / 2] >> (g % 2 * 4)) & 15u);
      if (n != 2)
        throw fail("bitmask", "row " + std::to_string(r) + ", columns " + std::to_string(g * 4) +
                                  ".." + std::to_string(g * 4 + 3) + " flag " + std::to_string(n) +
                                  " values; the format flags exactly 2 of every 4");
    }

  if (float_bytes(ct))
    return Tensor::decoded({rows, cols},
                           std::make_shared<Sparse24Decoder>(*compressed, *bitmask, cols),
                           compressed->nbytes() + bitmask->nbytes(), prefix + ".weight");
  // Codes of a quantised layer (1 byte each, 0 is the code of 0): expanded in place.
  Tensor w = Tensor::zeros(ct, {rows, cols}, prefix + ".weight");
  auto* dst = static_cast<uint8_t*>(w.mutable_data());
  const auto* src = static_cast<const uint8_t*>(compressed->data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      if (mask[r * want_b[1] + c / 8] >> (c % 8) & 1u) dst[r * cols + c] = *src++;
  return w;
}

}  // namespace mcw
