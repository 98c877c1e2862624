#include "engine/search/block_inputs.h"

#include <algorithm>

#include "engine/search/block_forward.h"

namespace mcw {

BlockInputs::BlockInputs(const LlamaModel& model,
                         const std::vector<std::span<const int32_t>>& windows,
                         const BlockInputOptions& opt, const LogitsFn& logits,
                         const CancelToken* cancel) {
  const LlamaConfig& c = model.cfg;
  std::vector<int64_t> rows;
  int64_t longest = 0;
  for (const auto& w : windows) rows.push_back(int64_t(w.size())), longest = std::max(longest, rows.back());
  const int64_t n = c.n_layers + 1;
  for (int64_t b = 0; b < n; ++b)
    stores_.push_back(std::make_unique<ActivationStore>(rows, c.dim, opt.dtype,
                                                        opt.memory_budget / uint64_t(n), opt.scratch_dir));
  std::vector<float> x(size_t(longest * c.dim)), out(logits ? size_t(longest * c.vocab_size) : 0);
  for (size_t w = 0; w < windows.size(); ++w) {
    llama_embed(model, windows[w], x.data());
    for (int64_t l = 0; l < c.n_layers; ++l) {
      if (cancel) cancel->throw_if_cancelled();
      stores_[size_t(l)]->put(w, x.data());
      llama_block(model, l, x.data(), rows[w]);
    }
    stores_.back()->put(w, x.data());
    if (logits) {
      llama_head(model, x.data(), rows[w], out.data());
      logits(w, out.data());
    }
  }
}

void BlockInputs::get(int64_t boundary, size_t window, float* x) const {
  stores_.at(size_t(boundary))->get(window, x);
}

uint64_t BlockInputs::bytes() const {
  uint64_t b = 0;
  for (const auto& s : stores_) b += s->bytes();
  return b;
}

bool BlockInputs::spilled() const {
  return std::any_of(stores_.begin(), stores_.end(), [](const auto& s) { return s->spilled(); });
}

}  // namespace mcw
