// protobuf's wire format (the encoding of ONNX files), read without a schema over bytes in
// memory: every length is checked against the bytes that remain and every error names the
// byte offset where it happened. Callers walk the fields they know and skip the rest.
//
// Why not libprotobuf with onnx.proto: model files are untrusted, and this reader bounds
// every length and nesting level and says where in the file a problem is, which the
// generated parser's "failed to parse" does not; it also needs no code generation step, and
// ONNX uses a small subset (varints, fixed32/64, length-delimited fields, packed arrays).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mcw {

enum class WireType : uint8_t { Varint = 0, Fixed64 = 1, Bytes = 2, Fixed32 = 5 };

struct WireField {
  uint32_t number = 0;
  WireType type = WireType::Varint;
  size_t offset = 0;               // of the field's key, from the start of the file
  uint64_t value = 0;              // varint, fixed32 or fixed64 bits
  std::span<const uint8_t> bytes;  // a length-delimited field's payload
  size_t bytes_offset = 0;         // where the payload starts, from the start of the file

  int64_t as_int64() const { return int64_t(value); }
  float as_float() const;    // fixed32 bits
  double as_double() const;  // fixed64 bits
  std::string as_string() const { return {bytes.begin(), bytes.end()}; }
};

class WireReader {
 public:
  // `data` starts at byte `base` of `file` (named in errors).
  WireReader(std::span<const uint8_t> data, size_t base, const std::string& file)
      : data_(data), base_(base), file_(file) {}
  // The payload of a length-delimited field, read as a message of its own.
  WireReader(const WireField& f, const std::string& file)
      : WireReader(f.bytes, f.bytes_offset, file) {}

  // The next field; false at the end of the message. Throws mcw::Error naming the file and
  // the byte offset for a truncated or malformed field.
  bool next(WireField& f);
  // Checks that `f` has wire type `t` (throws otherwise, naming `what`).
  void expect(const WireField& f, WireType t, const char* what) const;
  [[noreturn]] void fail(size_t offset, const std::string& what) const;
  // Where the next field starts (the end of the one just read), from the start of the file.
  size_t position() const { return base_ + pos_; }

  // A repeated scalar field, packed (one length-delimited field) or not (one field per
  // value): appends f's values.
  void varints(const WireField& f, std::vector<int64_t>& out) const;
  void floats(const WireField& f, std::vector<float>& out) const;
  void doubles(const WireField& f, std::vector<double>& out) const;

 private:
  uint64_t varint(size_t& pos) const;

  std::span<const uint8_t> data_;
  size_t base_ = 0, pos_ = 0;
  const std::string& file_;
};

}  // namespace mcw
