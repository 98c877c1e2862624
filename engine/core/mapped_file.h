// A read-only memory map of a whole file. Tensors loaded from disk are views into one of
// these and hold a shared_ptr to it, so a model's weights are paged in only when read.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace mcw {

class MappedFile {
 public:
  // Throws mcw::Error naming the path when it cannot be opened or is not a regular file.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace mcw
