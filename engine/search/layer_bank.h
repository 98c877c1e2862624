// The compressed layers a mixed-precision search assembles its candidates from, kept in
// files instead of memory: every searched layer at every level it may take is compressed
// once (for layer-local levels a layer compresses the same whatever the others get), written
// to a scratch directory as one packed-safetensors file per (layer, level) and read back on
// demand into a cache bounded in bytes. A candidate runs on the base model with each
// searched linear's product taken tile by tile from its compressed tensor
// (CompressedTensor::dequantize_rows into matmul_wt_row_tiles), so no candidate holds a
// decoded copy of its weights: what an 8 B model's search holds is the cache, one window's
// forward per candidate measured at once, and the layers those forwards are using.
#pragma once
#include <cstdint>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/compress/compress_llama.h"
#include "engine/io/staging_dir.h"
#include "engine/model/llama_model.h"

namespace mcw {

// Bytes a compressed tensor holds in memory (codes, f32 scales and zeros, masks, ...).
uint64_t memory_bytes(const CompressedTensor& t);

class LayerBank {
 public:
  // `layers`: the searched linears' weight names (a sensitivity table's rows); `levels`:
  // how many levels each may take. Files go to a fresh directory in `parent` (empty: the
  // system's temporary directory), removed with the bank. `cache_bytes`: what the layers
  // read back may hold at once (0: no limit).
  LayerBank(std::vector<std::string> layers, size_t levels, const std::filesystem::path& parent,
            uint64_t cache_bytes);

  // Compresses `base` with `recipe` (streaming, block by block, one block's layers in memory)
  // and files every searched layer it compresses as (row, level_of_row[row]).
  void add(const LlamaModel& base, const Recipe& recipe, std::span<const int> level_of_row,
           const CompressOptions& options, const ProgressFn& progress = {},
           const CancelToken* cancel = nullptr);

  bool has(size_t row, size_t level) const { return !slot(row, level).path.empty(); }
  // Throws mcw::Error when (row, level) was not added. Thread-safe.
  std::shared_ptr<const CompressedTensor> get(size_t row, size_t level) const;
  uint64_t storage_bits(size_t row, size_t level) const { return slot(row, level).storage_bits; }
  // compress_llama's accounting of a candidate (compressed linears + the rest of the
  // model's `parameters` at 16 bits). Every (row, choice[row]) must have been added.
  uint64_t storage_bits(std::span<const int> choice, uint64_t parameters) const;
  uint64_t file_bytes() const { return file_bytes_; }
  uint64_t largest_layer_bytes() const { return largest_; }  // in memory, read back
  uint64_t cache_bytes_held() const;
  uint64_t reads() const;  // files read so far (cache misses)

  // The forward's linear products for the candidate `choice` (a level per row) on `base`:
  // searched linears from the bank, the others (and the head) as the model stores them.
  // Both must outlive the returned function.
  LlamaLinearFn linears(const LlamaModel& base, const std::vector<int>& choice) const;

 private:
  struct Slot {
    std::string path;
    uint64_t storage_bits = 0, parameters = 0;
  };
  const Slot& slot(size_t row, size_t level) const { return slots_.at(row * levels_ + level); }

  std::vector<std::string> layers_;
  std::map<std::string, size_t> row_of_;
  size_t levels_;
  ScratchDir dir_;
  std::vector<Slot> slots_;  // [row * levels + level]
  uint64_t file_bytes_ = 0, largest_ = 0, cache_cap_;

  // Least recently used first; the map points into the list.
  using Entry = std::pair<size_t, std::shared_ptr<const CompressedTensor>>;
  mutable std::mutex mu_;
  mutable std::list<Entry> lru_;
  mutable std::map<size_t, std::list<Entry>::iterator> cached_;
  mutable uint64_t held_ = 0, reads_ = 0;
};

}  // namespace mcw
