// SHA-256 (FIPS 180-4), for content addresses of run artifacts and model fingerprints.
// Incremental, so a file of any size is hashed in fixed memory.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mcw {

class Sha256 {
 public:
  using Digest = std::array<uint8_t, 32>;
  Sha256();
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Pads and returns the digest; the object is reset afterwards and can hash again.
  Digest finish();

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string to_hex(const Sha256::Digest& d);  // 64 lower-case hex digits
std::string sha256_hex(std::string_view data);

struct FileHash {
  std::string sha256;  // hex
  uint64_t bytes = 0;
};
// Reads the file in chunks; throws mcw::Error naming it when it cannot be read.
FileHash sha256_file(const std::string& path);

}  // namespace mcw
