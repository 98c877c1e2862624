// The hidden states entering every decoder block of the original model, for a fixed set of
// token windows: kept once, so that a sensitivity cell compressing a layer of block L
// starts there instead of running blocks 0..L-1 again. Boundary b < n_layers is the input
// of block b; boundary n_layers is the last block's output (what the head reads). One
// ActivationStore per boundary, each spilled to a scratch file past its share of the
// budget: (n_layers + 1) × tokens × dim values, 268 MB in f32 for 8 windows of 256 tokens
// at the Llama-3.2-1B shape (16 blocks of 2048).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/compress/activation_store.h"
#include "engine/core/progress.h"
#include "engine/model/llama_model.h"

namespace mcw {

struct BlockInputOptions {
  // F32 keeps a cell's result equal to a full rerun bit for bit. BF16 halves the memory
  // but rounds the block input (relative 2⁻⁹): a cell then differs from the reference even
  // where its layer is unchanged, a floor of KL under every cell that the reference
  // logits (from unrounded states) do not share; the mildest settings (w8) are the ones
  // it would blur. Hence F32 by default, spilled past the budget.
  DType dtype = DType::F32;
  uint64_t memory_budget = uint64_t(1) << 30;  // in memory up to this, past it spilled
  std::string scratch_dir;                     // empty: the system's temporary directory
};

class BlockInputs {
 public:
  // Runs each window (a fresh KV cache each) through `model` and keeps every boundary.
  // `logits`, when given, is called per window with its logits [rows, vocab] (the reference
  // logits of a KL meter come out of the same pass). Throws mcw::Cancelled when cancelled.
  using LogitsFn = std::function<void(size_t window, const float* logits)>;
  BlockInputs(const LlamaModel& model, const std::vector<std::span<const int32_t>>& windows,
              const BlockInputOptions& opt, const LogitsFn& logits = {},
              const CancelToken* cancel = nullptr);

  int64_t boundaries() const { return int64_t(stores_.size()); }  // n_layers + 1
  size_t windows() const { return stores_.front()->windows(); }
  int64_t rows(size_t window) const { return stores_.front()->rows(window); }
  // Window w's hidden states at boundary b, [rows(w), dim] f32.
  void get(int64_t boundary, size_t window, float* x) const;
  uint64_t bytes() const;  // of all boundaries
  bool spilled() const;    // any boundary past its budget

 private:
  std::vector<std::unique_ptr<ActivationStore>> stores_;
};

}  // namespace mcw
