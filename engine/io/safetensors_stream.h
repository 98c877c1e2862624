// Writes a safetensors file whose tensors are produced one after another, never all in
// memory: the header is written first (every shape is known up front), then the data
// section arrives in pieces of any size. Used for models larger than RAM (mcw synth).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/tensor.h"
#include "engine/io/atomic_file.h"

namespace mcw {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
};

// The header text (JSON padded to a multiple of 8 bytes, as the reference writer pads)
// for tensors stored back to back in `entries`' order; throws mcw::Error naming `path`
// for block dtypes, reserved or repeated names, invalid UTF-8 or overflowing shapes.
std::string safetensors_header(const std::string& path,
                               const std::vector<SafetensorsEntry>& entries,
                               const std::map<std::string, std::string>& metadata = {});

class SafetensorsStreamWriter {
 public:
  // Writes the header at once; the file appears (atomically) only on commit().
  SafetensorsStreamWriter(std::string path, const std::vector<SafetensorsEntry>& entries,
                          const std::map<std::string, std::string>& metadata = {});

  // The next `n` bytes of the data section; throws when they run past its end.
  void write(const void* data, size_t n);
  uint64_t data_bytes() const { return data_bytes_; }
  uint64_t written() const { return written_; }
  // Throws unless exactly data_bytes() were written, so a short stream never commits.
  void commit();

 private:
  std::string path_;
  AtomicFile file_;
  uint64_t data_bytes_ = 0, written_ = 0;
};

}  // namespace mcw
