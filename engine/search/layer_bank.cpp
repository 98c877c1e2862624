#include "engine/search/layer_bank.h"

#include <array>

#include "engine/core/error.h"
#include "engine/export/packed_safetensors.h"
#include "engine/kernels/stored_matmul.h"

namespace mcw {

uint64_t memory_bytes(const CompressedTensor& t) {
  return t.codes.size() + 4 * (t.scales.size() + t.zeros.size() + t.codebook.size()) +
         4 * (t.g_idx.size() + t.input_scale.size()) + t.mask.size() +
         6 * t.outlier_index.size() + t.dense.nbytes() + t.lr_a.nbytes() + t.lr_b.nbytes() +
         sizeof(CompressedTensor);
}

LayerBank::LayerBank(std::vector<std::string> layers, size_t levels,
                     const std::filesystem::path& parent, uint64_t cache_bytes)
    : layers_(std::move(layers)),
      levels_(levels),
      dir_(parent, "mcw-layer-bank"),
      slots_(layers_.size() * levels),
      cache_cap_(cache_bytes) {
  for (size_t r = 0; r < layers_.size(); ++r) row_of_[layers_[r]] = r;
}

void LayerBank::add(const LlamaModel& base, const Recipe& recipe, std::span<const int> level_of_row,
                    const CompressOptions& options, const ProgressFn& progress,
                    const CancelToken* cancel) {
  if (level_of_row.size() != layers_.size())
    throw Error("layer bank", "one level per searched layer is needed");
  CompressOptions co = options;
  size_t seen = 0;
  co.block_done = [&](const BlockDone&, CompressionResult& result) {
    for (; seen < result.layers.size(); ++seen) {
      CompressedLayer& cl = result.layers[seen];
      const std::string name = cl.tensor.name;
      if (auto it = row_of_.find(name); it != row_of_.end()) {
        const size_t row = it->second, level = size_t(level_of_row[row]);
        if (level >= levels_) throw Error("layer bank", "level out of range for " + name);
        Slot& s = slots_[row * levels_ + level];
        s.path = (dir_.path() / "r").string();
        s.path.append(std::to_string(row)).append("-l").append(std::to_string(level));
        s.path.append(".safetensors");
        write_packed_safetensors(s.path, std::vector<const CompressedTensor*>{&cl.tensor});
        s.storage_bits = cl.storage_bits;
        s.parameters = uint64_t(cl.tensor.rows * cl.tensor.cols);
        file_bytes_ += std::filesystem::file_size(s.path);
        largest_ = std::max(largest_, memory_bytes(cl.tensor));
        cl.tensor.drop_payload();
      }
      // Back to the base model's bytes: candidates read the bank, and a layer-local level
      // needs nothing of this result's compressed weights (a calibrated one would, and is
      // never banked).
      if (Tensor* w = find_weight(result.model, name)) *w = *find_weight(const_cast<LlamaModel&>(base), name);
    }
  };
  compress_llama(base, recipe, {}, co, progress, cancel);
}

std::shared_ptr<const CompressedTensor> LayerBank::get(size_t row, size_t level) const {
  const size_t key = row * levels_ + level;
  const Slot& s = slots_.at(key);
  if (s.path.empty())
    throw Error("layer bank", layers_.at(row) + " has no compressed tensor at level " + std::to_string(level));
  {
    std::lock_guard lock(mu_);
    if (auto it = cached_.find(key); it != cached_.end()) {
      lru_.splice(lru_.end(), lru_, it->second);
      return it->second->second;
    }
  }
  std::vector<CompressedTensor> read = read_packed_safetensors(s.path);
  if (read.size() != 1 || read[0].name != layers_[row])
    throw Error(s.path, "the layer bank's file does not hold " + layers_[row]);
  auto t = std::make_shared<const CompressedTensor>(std::move(read[0]));
  std::lock_guard lock(mu_);
  ++reads_;
  if (auto it = cached_.find(key); it != cached_.end()) return it->second->second;  // raced
  const uint64_t bytes = memory_bytes(*t);
  if (cache_cap_ && bytes > cache_cap_) return t;
  cached_[key] = lru_.insert(lru_.end(), {key, t});
  held_ += bytes;
  while (cache_cap_ && held_ > cache_cap_) {  // the newest entry fits: the loop ends before it
    held_ -= memory_bytes(*lru_.front().second);
    cached_.erase(lru_.front().first);
    lru_.pop_front();
  }
  return t;
}

uint64_t LayerBank::storage_bits(std::span<const int> choice, uint64_t parameters) const {
  uint64_t bits = 0, covered = 0;
  for (size_t r = 0; r < choice.size(); ++r) {
    const Slot& s = slot(r, size_t(choice[r]));
    if (s.path.empty()) throw Error("layer bank", layers_[r] + " was not compressed at its level");
    bits += s.storage_bits;
    covered += s.parameters;
  }
  return bits + 16 * (parameters - covered);
}

uint64_t LayerBank::cache_bytes_held() const {
  std::lock_guard lock(mu_);
  return held_;
}

uint64_t LayerBank::reads() const {
  std::lock_guard lock(mu_);
  return reads_;
}

LlamaLinearFn LayerBank::linears(const LlamaModel& base, const std::vector<int>& choice) const {
  if (choice.size() != layers_.size()) throw Error("layer bank", "one level per searched layer is needed");
  // The bank row of each block's seven linears and of the head; -1: not searched.
  std::map<const Tensor*, std::string> name_of;
  for (const auto& [name, t] : base.named_tensors()) name_of[t] = name;
  auto row = [&](const Tensor& w) -> int64_t {
    auto n = name_of.find(&w);
    if (n == name_of.end()) return -1;
    auto r = row_of_.find(n->second);
    return r == row_of_.end() ? -1 : int64_t(r->second);
  };
  std::vector<std::array<int64_t, 7>> rows;
  for (const LlamaLayer& L : base.layers)
    rows.push_back({row(L.wq), row(L.wk), row(L.wv), row(L.wo), row(L.w_gate), row(L.w_up),
                    row(L.w_down)});
  const int64_t head_row = row(base.lm_head());
  for (size_t r = 0; r < choice.size(); ++r) slot(r, size_t(choice[r]));  // range check
  return [this, &base, rows = std::move(rows), head_row, choice](
             int64_t layer, LlamaLinear which, const float* x, int64_t T, float* y,
             const float* bias, bool accumulate) {
    const int64_t r = layer < 0 ? head_row : rows[size_t(layer)][size_t(which)];
    if (r < 0) {
      const LlamaLayer* L = layer < 0 ? nullptr : &base.layers[size_t(layer)];
      const Tensor* w[] = {L ? &L->wq : nullptr, L ? &L->wk : nullptr, L ? &L->wv : nullptr,
                           L ? &L->wo : nullptr, L ? &L->w_gate : nullptr, L ? &L->w_up : nullptr,
                           L ? &L->w_down : nullptr, &base.lm_head()};
      return matmul_wt_stored(x, *w[size_t(which)], y, T, bias, accumulate);
    }
    const std::shared_ptr<const CompressedTensor> t = get(size_t(r), size_t(choice[size_t(r)]));
    matmul_wt_row_tiles(
        x, t->cols, t->rows, t->cols, row_tile_rows(T, t->rows, t->cols),
        [&](int64_t r0, int64_t r1, float* dst) { t->dequantize_rows(r0, r1, dst); }, y, t->rows,
        T, bias, accumulate);
  };
}

}  // namespace mcw
