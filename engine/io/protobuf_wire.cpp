#include "engine/io/protobuf_wire.h"

#include <cstring>

#include "engine/core/error.h"

namespace mcw {

float WireField::as_float() const {
  const uint32_t bits = uint32_t(value);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

double WireField::as_double() const {
  double d;
  std::memcpy(&d, &value, 8);
  return d;
}

void WireReader::fail(size_t offset, const std::string& what) const {
  throw Error(file_, "malformed protobuf at byte " + std::to_string(offset) + ": " + what);
}

uint64_t WireReader::varint(size_t& pos) const {
  const size_t start = pos;
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= data_.size()) fail(base_ + start, "varint runs past the end");
    const uint8_t b = data_[pos++];
    v |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  fail(base_ + start, "varint longer than 10 bytes");
}

bool WireReader::next(WireField& f) {
  if (pos_ >= data_.size()) return false;
  f = {};
  f.offset = base_ + pos_;
  const uint64_t key = varint(pos_);
  f.number = uint32_t(key >> 3);
  if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
    fail(f.offset, "field number " + std::to_string(key >> 3));
  const unsigned type = unsigned(key & 7);
  auto need = [&](size_t n) {
    if (data_.size() - pos_ < n)
      fail(f.offset, "field " + std::to_string(f.number) + " needs " + std::to_string(n) +
                         " bytes, " + std::to_string(data_.size() - pos_) + " remain");
  };
  switch (type) {
    case 0:
      f.type = WireType::Varint;
      f.value = varint(pos_);
      break;
    case 1:
      f.type = WireType::Fixed64;
      need(8);
      std::memcpy(&f.value, data_.data() + pos_, 8);
      pos_ += 8;
      break;
    case 2: {
      f.type = WireType::Bytes;
      const uint64_t n = varint(pos_);
      if (n > data_.size() - pos_)
        fail(f.offset, "field " + std::to_string(f.number) + " says " + std::to_string(n) +
                           " bytes, " + std::to_string(data_.size() - pos_) + " remain");
      f.bytes = data_.subspan(pos_, size_t(n));
      f.bytes_offset = base_ + pos_;
      pos_ += size_t(n);
      break;
    }
    case 5: {
      f.type = WireType::Fixed32;
      need(4);
      uint32_t v;
      std::memcpy(&v, data_.data() + pos_, 4);
      f.value = v;
      pos_ += 4;
      break;
    }
    default:
      fail(f.offset, "wire type " + std::to_string(type) + " (groups or invalid) in field " +
                         std::to_string(f.number));
  }
  return true;
}

void WireReader::expect(const WireField& f, WireType t, const char* what) const {
  if (f.type != t) fail(f.offset, std::string(what) + " has the wrong wire type");
}

void WireReader::varints(const WireField& f, std::vector<int64_t>& out) const {
  if (f.type == WireType::Varint) return out.push_back(f.as_int64());
  expect(f, WireType::Bytes, "a repeated integer field");
  WireReader r(f, file_);
  size_t pos = 0;
  while (pos < f.bytes.size()) out.push_back(int64_t(r.varint(pos)));
}

template <class T, WireType W>
static void fixed_values(const WireReader& r, const WireField& f, std::vector<T>& out,
                         const char* what) {
  if (f.type == W) {
    if constexpr (sizeof(T) == 4)
      out.push_back(f.as_float());
    else
      out.push_back(f.as_double());
    return;
  }
  r.expect(f, WireType::Bytes, what);
  if (f.bytes.size() % sizeof(T))
    r.fail(f.bytes_offset,
           std::string(what) + ": a packed length not a multiple of " + std::to_string(sizeof(T)));
  const size_t n = f.bytes.size() / sizeof(T), at = out.size();
  out.resize(at + n);
  std::memcpy(out.data() + at, f.bytes.data(), n * sizeof(T));
}

void WireReader::floats(const WireField& f, std::vector<float>& out) const {
  fixed_values<float, WireType::Fixed32>(*this, f, out, "a repeated float field");
}

void WireReader::doubles(const WireField& f, std::vector<double>& out) const {
  fixed_values<double, WireType::Fixed64>(*this, f, out, "a repeated double field");
}

}  // namespace mcw
