#include "engine/compress/activation_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/core/half.h"

namespace mcw {

ActivationStore::ActivationStore(std::vector<int64_t> rows_per_window, int64_t width, DType dtype,
                                 uint64_t memory_budget, const std::string& scratch_dir)
    : rows_(std::move(rows_per_window)), width_(width), dtype_(dtype) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    throw Error("", "activations are kept in f32 or bf16, not " + std::string(dtype_name(dtype)));
  uint64_t n = 0;
  for (int64_t r : rows_) offset_.push_back(n), n += uint64_t(r) * uint64_t(width);
  bytes_ = n * (dtype == DType::F32 ? 4 : 2);
  if (bytes_ == 0) return;
  if (bytes_ <= memory_budget) {
    base_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base_ == MAP_FAILED) {
      base_ = nullptr;
      throw Error("", "cannot allocate " + std::to_string(bytes_ >> 20) + " MiB of activations");
    }
    return;
  }
  // O_TMPFILE: the file has no name, so nothing is left behind whatever ends the process.
  const std::string dir = scratch_dir.empty() ? std::filesystem::temp_directory_path().string() : scratch_dir;
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR, 0600);
  if (fd < 0) throw Error(dir, std::string("cannot make a scratch file for activations: ") + std::strerror(errno));
  if (::ftruncate(fd, off_t(bytes_)) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(dir, "cannot size a " + std::to_string(bytes_ >> 20) + " MiB scratch file: " + std::strerror(e));
  }
  base_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (base_ == MAP_FAILED) {
    base_ = nullptr;
    throw Error(dir, "cannot map the activations' scratch file");
  }
  spilled_ = true;
}

ActivationStore::~ActivationStore() {
  if (base_) ::munmap(base_, bytes_);
}

void ActivationStore::put(size_t w, const float* x) {
  const size_t n = size_t(rows_[w] * width_);
  if (dtype_ == DType::F32)
    std::memcpy(static_cast<float*>(base_) + offset_[w], x, n * 4);
  else
    f32_to_bf16_row(x, static_cast<uint16_t*>(base_) + offset_[w], n);
}

void ActivationStore::get(size_t w, float* x) const {
  const size_t n = size_t(rows_[w] * width_);
  if (dtype_ == DType::F32)
    std::memcpy(x, static_cast<const float*>(base_) + offset_[w], n * 4);
  else
    bf16_to_f32_row(static_cast<const uint16_t*>(base_) + offset_[w], x, n);
}

}  // namespace mcw
