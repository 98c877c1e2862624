// protobuf's wire format written (the other half of protobuf_wire.h): each function appends
// one field, key and value, to a message being built in a byte string.
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace mcw::pb {

inline void varint(std::string& out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out += char(uint8_t(v) | 0x80);
  out += char(uint8_t(v));
}
inline void key(std::string& out, uint32_t field, uint32_t wire_type) {
  varint(out, uint64_t(field) << 3 | wire_type);
}
inline void int_field(std::string& out, uint32_t field, int64_t v) {
  key(out, field, 0);
  varint(out, uint64_t(v));
}
inline void float_field(std::string& out, uint32_t field, float v) {
  key(out, field, 5);
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}
// A length-delimited field: a string, bytes or an embedded message.
inline void bytes_field(std::string& out, uint32_t field, std::string_view payload) {
  key(out, field, 2);
  varint(out, payload.size());
  out.append(payload);
}
inline void bytes_field(std::string& out, uint32_t field, std::span<const uint8_t> payload) {
  bytes_field(out, field,
              std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()));
}

}  // namespace mcw::pb
