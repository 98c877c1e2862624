#include "engine/compress/activation_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/io/atomic_file.h"

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

namespace {

constexpr char kMagic[8] = {'M', 'C', 'W', 'A', 'C', 'T', '1', 0};

// magic, dtype, width, window count, rows of each window: what a file must match.
std::vector<int64_t> layout(DType dtype, int64_t width, const std::vector<int64_t>& rows) {
  std::vector<int64_t> h{int64_t(dtype), width, int64_t(rows.size())};
  h.insert(h.end(), rows.begin(), rows.end());
  return h;
}

}  // namespace

void ActivationStore::save(const std::string& path) const {
  AtomicFile f(path);
  const std::vector<int64_t> h = layout(dtype_, width_, rows_);
  f.write(kMagic, sizeof kMagic);
  f.write(h.data(), h.size() * 8);
  if (bytes_) f.write(base_, bytes_);
  f.commit();
}

void ActivationStore::load(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(path, std::string("cannot open: ") + std::strerror(errno));
  const std::vector<int64_t> want = layout(dtype_, width_, rows_);
  std::vector<int64_t> got(want.size());
  char magic[8];
  const bool ok = std::fread(magic, 1, 8, f) == 8 && std::memcmp(magic, kMagic, 8) == 0 &&
                  std::fread(got.data(), 8, got.size(), f) == got.size() && got == want &&
                  (bytes_ == 0 || std::fread(base_, 1, bytes_, f) == bytes_) && std::fgetc(f) == EOF;
  std::fclose(f);
  if (!ok) throw Error(path, "is not the saved activations of this calibration set (truncated or another layout)");
}

}  // namespace mcw
