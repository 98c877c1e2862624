// A named n-dimensional array: shape (outermost dimension first, as PyTorch and
// safetensors write it; GGUF's reversed order is converted at load), element type, and
// bytes that are either owned or a view into a memory-mapped file. Copies share bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/core/dtype.h"

namespace mcw {

using Shape = std::vector<int64_t>;

// A weight [out, in] stored as GPTQ stores it, for products that read the codes where
// they lie (kernels/column_packed_gemv.h): codes of `bits` bits packed 32 / bits to an
// int32 word along the input dimension, LSB first, words [in / (32 / bits), out]; per
// (group, output) a scale and a zero point (codes packed along the outputs, LSB first);
// value = round_to(scale dtype, scale · (code − (zero + zero_offset))).
struct ColumnPackedCodes {
  int bits = 4;  // 2, 4 or 8
  int64_t out = 0, in = 0, group_size = 0, groups = 0;
  const uint32_t* qweight = nullptr;  // [in / (32 / bits), out]
  const int32_t* g_idx = nullptr;     // [in] each input's group, or null: input / group_size
  DType scale_dtype = DType::F16;     // F16 or F32; values are rounded to it
  const void* scales = nullptr;       // [groups, out]
  const uint32_t* qzeros = nullptr;   // [groups, zero_words]
  int64_t zero_words = 0;
  float zero_offset = 0;  // GPTQ v1 stores zero − 1
  // AutoAWQ's GEMM layout instead: 4-bit codes packed along the outputs, words [in, out / 8],
  // output 8j + k of a word at nibble (0, 4, 1, 5, 2, 6, 3, 7)[k]; zero points packed the
  // same way, [groups, out / 8].
  bool awq = false;
};

// A weight [out, in] stored as compressed-tensors' pack-quantized: codes of `bits` bits
// packed 32 / bits to an int32 word along the input dimension, LSB first, each row `words`
// words; per (output, group) a scale and a zero code (TensorDecoder::row_parameters);
// value = round_to(scale dtype, scale · (code − zero code)).
struct RowPackedCodes {
  int bits = 4;  // 2, 4 or 8
  int64_t out = 0, in = 0, words = 0, group_size = 0, groups = 0;
  const uint32_t* q = nullptr;  // [out, words]
  DType scale_dtype = DType::F16;  // F16 or F32; values are rounded to it
};

// The values of a tensor of dtype Packed: a weight whose file layout spreads it over
// several stored parts (a GPTQ checkpoint's qweight, qzeros, scales and g_idx), decoded
// on demand so the parts stay views of the mapped file.
class TensorDecoder {
 public:
  virtual ~TensorDecoder() = default;
  // Values [first, first + count) of the row-major tensor, as f32.
  virtual void decode(size_t first, size_t count, float* out) const = 0;
  // False for a type MCW lists but cannot decode (decode() then throws, naming it).
  virtual bool readable() const { return true; }
  // Rows decoded at once cheaply (the layout's cache line covers this many rows).
  virtual int64_t row_granularity() const { return 1; }
  // The scheme in words: "GPTQ int4 g128 asym, act-order".
  virtual std::string describe() const = 0;
  // The layout, when products may read the codes in place (small m); null otherwise.
  virtual const ColumnPackedCodes* column_packed() const { return nullptr; }
  virtual const RowPackedCodes* row_packed() const { return nullptr; }
  // With row_packed(): row o's scale and zero code of each of its groups.
  virtual void row_parameters(int64_t /*o*/, float* /*scale*/, int32_t* /*zero_code*/) const {}
  // Y [m, out] (+)= X [m, in] · Wᵀ (+ bias) read in place, for a few rows of X (decode), by
  // a layout that can; false leaves it to the row-tile product over decode().
  virtual bool multiply(const float* /*X*/, int64_t /*ldx*/, float* /*Y*/, int64_t /*ldy*/,
                        int64_t /*m*/, const float* /*bias*/, bool /*accumulate*/) const {
    return false;
  }
};

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled, 64-byte aligned storage. Throws mcw::Error on a shape that overflows or
  // is not a whole number of blocks.
  static Tensor zeros(DType dtype, Shape shape, std::string name = {});
  static Tensor from_f32(std::span<const float> values, Shape shape, std::string name = {});
  // A view of bytes owned elsewhere; `owner` keeps them alive (a MappedFile, say).
  static Tensor view(DType dtype, Shape shape, const void* data, size_t nbytes,
                     std::shared_ptr<const void> owner, std::string name = {});
  // A Packed tensor: values from `decoder`, `nbytes` the stored parts' bytes.
  static Tensor decoded(Shape shape, std::shared_ptr<const TensorDecoder> decoder, size_t nbytes,
                        std::string name = {});

  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_[i]; }
  size_t ndim() const { return shape_.size(); }
  int64_t numel() const;
  size_t nbytes() const { return nbytes_; }
  bool writable() const { return writable_; }  // owned storage (not a view of a file)
  bool empty() const { return data_ == nullptr && nbytes_ == 0 && shape_.empty(); }

  const void* data() const { return data_; }  // null for Packed
  const TensorDecoder* decoder() const { return decoder_.get(); }  // Packed only
  // Whether values can be read (a GGUF tensor of a type MCW does not decode cannot).
  bool readable() const { return !decoder_ || decoder_->readable(); }
  // Only owned tensors are writable; throws for views of mapped files.
  void* mutable_data();
  // as<float>() throws mcw::Error naming the tensor unless it is F32: a loaded model's
  // weights keep their file dtype, and reading bf16 bytes as floats must fail loudly.
  template <class T> const T* as() const {
    if constexpr (std::is_same_v<T, float>) require_f32();
    return static_cast<const T*>(data_);
  }
  template <class T> T* mutable_as() {
    if constexpr (std::is_same_v<T, float>) require_f32();
    return static_cast<T*>(mutable_data());
  }

  // Rows [begin, end) of a matrix (elements of a vector) as a view sharing this tensor's
  // storage, e.g. q/k/v out of a fused qkv projection. Throws mcw::Error for a Packed
  // tensor (its codes are not laid out by rows) or a range outside the tensor.
  Tensor rows(int64_t begin, int64_t end, std::string name) const;

  // Values converted (or dequantised) to f32.
  std::vector<float> to_f32() const;
  // An owned f32 copy (same name and shape), writable whatever this one is.
  Tensor f32_copy() const;
  void to_f32(float* out, size_t first, size_t count) const;  // a block-aligned range

 private:
  void require_f32() const;

  std::string name_;
  DType dtype_ = DType::F32;
  Shape shape_;
  const void* data_ = nullptr;
  size_t nbytes_ = 0;
  bool writable_ = false;
  std::shared_ptr<const void> owner_;
  std::shared_ptr<const TensorDecoder> decoder_;
};

std::string shape_string(const Shape& shape);  // "[4096, 11008]"

}  // namespace mcw
