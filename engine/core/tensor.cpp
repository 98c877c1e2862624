#include "engine/core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/core/blocks.h"
#include "engine/core/error.h"

namespace mcw {

static uint64_t checked_bytes(DType dtype, const Shape& shape, const std::string& name) {
  auto n = checked_numel(shape);
  auto bytes = n ? dtype_bytes(dtype, *n) : std::nullopt;
  if (!bytes)
    throw Error(name, "shape " + shape_string(shape) + " is invalid for " +
                          std::string(dtype_name(dtype)));
  return *bytes;
}

Tensor Tensor::zeros(DType dtype, Shape shape, std::string name) {
  const uint64_t bytes = checked_bytes(dtype, shape, name);
  const size_t alloc = (bytes + 63) / 64 * 64;
  void* p = alloc ? std::aligned_alloc(64, alloc) : nullptr;
  if (alloc && !p) throw std::bad_alloc();
  if (p) std::memset(p, 0, alloc);
  Tensor t;
  t.name_ = std::move(name);
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = p;
  t.nbytes_ = bytes;
  t.writable_ = true;
  t.owner_ = std::shared_ptr<const void>(p, [](const void* q) { std::free(const_cast<void*>(q)); });
  return t;
}

Tensor Tensor::from_f32(std::span<const float> values, Shape shape, std::string name) {
  Tensor t = zeros(DType::F32, std::move(shape), std::move(name));
  if (size_t(t.numel()) != values.size())
    throw Error(t.name_, "shape " + shape_string(t.shape_) + " does not hold " +
                             std::to_string(values.size()) + " values");
  if (!values.empty()) std::memcpy(t.mutable_data(), values.data(), values.size() * 4);
  return t;
}

Tensor Tensor::view(DType dtype, Shape shape, const void* data, size_t nbytes,
                    std::shared_ptr<const void> owner, std::string name) {
  if (checked_bytes(dtype, shape, name) != nbytes)
    throw Error(name, "shape " + shape_string(shape) + " needs a different byte length than " +
                          std::to_string(nbytes));
  Tensor t;
  t.name_ = std::move(name);
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  t.nbytes_ = nbytes;
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end, std::string name) const {
  if (dtype_ == DType::Packed || shape_.empty() || shape_.size() > 2)
    throw Error(name_, "cannot take rows of a " + std::string(dtype_name(dtype_)) + " tensor of shape " +
                           shape_string(shape_));
  if (begin < 0 || begin > end || end > shape_[0])
    throw Error(name_, "rows " + std::to_string(begin) + ".." + std::to_string(end) + " are outside " +
                           shape_string(shape_));
  const int64_t cols = shape_.size() == 2 ? shape_[1] : 1;
  const std::optional<uint64_t> row = dtype_bytes(dtype_, uint64_t(cols));
  if (!row) throw Error(name_, "rows of " + std::to_string(cols) + " values are not whole " +
                                   std::string(dtype_name(dtype_)) + " blocks");
  const uint64_t row_bytes = *row;
  Shape shape = shape_;
  shape[0] = end - begin;
  return view(dtype_, std::move(shape), static_cast<const char*>(data_) + row_bytes * uint64_t(begin),
              size_t(row_bytes * uint64_t(end - begin)), owner_, std::move(name));
}

Tensor Tensor::decoded(Shape shape, std::shared_ptr<const TensorDecoder> decoder, size_t nbytes,
                       std::string name) {
  if (!decoder) throw Error(name, "a packed tensor needs a decoder");
  if (!checked_numel(shape)) throw Error(name, "shape " + shape_string(shape) + " overflows");
  Tensor t;
  t.name_ = std::move(name);
  t.dtype_ = DType::Packed;
  t.shape_ = std::move(shape);
  t.nbytes_ = nbytes;
  t.decoder_ = std::move(decoder);
  return t;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

void* Tensor::mutable_data() {
  if (!writable_) throw Error(name_, "tensor is a read-only view");
  return const_cast<void*>(data_);
}

void Tensor::require_f32() const {
  if (dtype_ != DType::F32 && !(data_ == nullptr && nbytes_ == 0))
    throw Error(name_, "tensor is " + std::string(dtype_name(dtype_)) + ", not f32");
}

Tensor Tensor::f32_copy() const {
  if (!readable()) decoder_->decode(0, 0, nullptr);  // throws, naming the type, before allocating
  Tensor out = zeros(DType::F32, shape_, name_);
  to_f32(out.mutable_as<float>(), 0, size_t(numel()));
  return out;
}

std::vector<float> Tensor::to_f32() const {
  if (!readable()) decoder_->decode(0, 0, nullptr);  // throws, naming the type, before allocating
  std::vector<float> out(static_cast<size_t>(numel()));
  to_f32(out.data(), 0, out.size());
  return out;
}

void Tensor::to_f32(float* out, size_t first, size_t count) const {
  if (decoder_) return decoder_->decode(first, count, out);
  const DTypeInfo& info = dtype_info(dtype_);
  const size_t block = size_t(info.block);
  const auto* base = static_cast<const char*>(data_) + first / block * size_t(info.block_bytes);
  mcw::to_f32(dtype_, base, out, count);
}

std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace mcw
