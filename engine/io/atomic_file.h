// Writes a file so that readers see either the old file or the complete new one: data
// goes to a temporary beside the target, is fsync'ed, then renamed over it. A writer
// destroyed before commit() removes its temporary, so an error or cancel leaves nothing.
#pragma once
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace mcw {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // throws mcw::Error if the temporary cannot be made
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write_zeros(size_t n);
  uint64_t position() const { return pos_; }
  void commit();  // flush, fsync, rename; throws mcw::Error on failure

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;
  bool done_ = false;
};

// The whole of `bytes` as the file's new content, atomically.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace mcw
