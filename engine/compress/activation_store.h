// The calibration activations between decoder blocks: for each calibration window, its
// rows × width values, kept as f32 or bf16. Up to a memory budget they live in anonymous
// memory; past it, in an unlinked scratch file mapped into memory, so that they cost page
// cache (which the kernel can write back and drop) instead of anonymous memory. 128
// windows × 2048 tokens of an 8 B model's 4096-wide residual stream are 2 GiB in bf16.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/dtype.h"

namespace mcw {

class ActivationStore {
 public:
  // dtype F32 or BF16. Throws mcw::Error naming the scratch directory when it must spill
  // and cannot make or size its file.
  ActivationStore(std::vector<int64_t> rows_per_window, int64_t width, DType dtype,
                  uint64_t memory_budget, const std::string& scratch_dir);
  ~ActivationStore();
  ActivationStore(const ActivationStore&) = delete;
  ActivationStore& operator=(const ActivationStore&) = delete;

  size_t windows() const { return rows_.size(); }
  int64_t rows(size_t w) const { return rows_[w]; }
  int64_t width() const { return width_; }
  // Window w's rows(w) × width values, from / to f32.
  void put(size_t w, const float* x);
  void get(size_t w, float* x) const;

  // The whole store to `path` (atomically: a header naming the layout, then the values in
  // their dtype), and back: load() throws mcw::Error naming the file when it is not a
  // store of this layout. A resumed compression continues from such a file.
  void save(const std::string& path) const;
  void load(const std::string& path);

  uint64_t bytes() const { return bytes_; }
  bool spilled() const { return spilled_; }

 private:
  std::vector<int64_t> rows_;
  std::vector<uint64_t> offset_;  // element offset of each window
  int64_t width_;
  DType dtype_;
  uint64_t bytes_ = 0;
  bool spilled_ = false;
  void* base_ = nullptr;  // mmap'd: anonymous, or the scratch file
};

}  // namespace mcw
