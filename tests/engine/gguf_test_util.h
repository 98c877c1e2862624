// Helpers for the GGUF tests: a little-endian byte builder written from the spec (shifts,
// not memcpy, so it does not share the writer's assumptions) and scratch files.
#pragma once
#include <unistd.h>

#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace mcw::test {

struct Bytes {
  std::vector<uint8_t> b;

  Bytes& le(uint64_t x, int n) {
    for (int i = 0; i < n; ++i) b.push_back(uint8_t(x >> (8 * i)));
    return *this;
  }
  Bytes& u8(uint8_t x) { return le(x, 1); }
  Bytes& u32(uint32_t x) { return le(x, 4); }
  Bytes& u64(uint64_t x) { return le(x, 8); }
  Bytes& f32(float x) { return le(std::bit_cast<uint32_t>(x), 4); }
  Bytes& raw(std::string_view s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& str(std::string_view s) { return u64(s.size()).raw(s); }
  Bytes& pad(size_t alignment) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
  size_t size() const { return b.size(); }

  // "GGUF", version, tensor count, key/value count.
  static Bytes header(uint32_t version, uint64_t tensors, uint64_t kvs) {
    Bytes h;
    h.u8(0x47).u8(0x47).u8(0x55).u8(0x46);
    return std::move(h.u32(version).u64(tensors).u64(kvs));
  }
  // name, n_dims, ne (innermost first), ggml type, offset.
  Bytes& tensor_info(std::string_view name, const std::vector<uint64_t>& ne, uint32_t type,
                     uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
};

inline std::string scratch_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("mcw_gguf_tests_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  // A fresh file, not a truncated one: ext4 flushes files rewritten after truncation on
  // close, which would make the mutation loop crawl.
  std::filesystem::remove(path);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

}  // namespace mcw::test
