#include "engine/compress/structured_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/core/error.h"

namespace mcw {

HeadUnits head_units(const LlamaConfig& c) {
  if (c.n_kv_heads > 1) return {c.n_kv_heads, c.n_heads / c.n_kv_heads, true};
  return {c.n_heads, 1, false};
}

int64_t units_to_remove(int64_t units, double fraction) {
  const int64_t r = int64_t(std::llround(fraction * double(units)));
  return std::clamp<int64_t>(r, 0, std::max<int64_t>(units - 1, 0));
}

LlamaConfig config_without_heads(const LlamaConfig& c, int64_t units_removed) {
  const HeadUnits u = head_units(c);
  LlamaConfig out = c;
  out.n_heads -= units_removed * u.heads_per_unit;
  if (u.with_kv) out.n_kv_heads -= units_removed;
  return out;
}

LlamaConfig config_without_channels(const LlamaConfig& c, int64_t channels_removed) {
  LlamaConfig out = c;
  out.hidden_dim -= channels_removed;
  return out;
}

namespace {

// Indices 0..n-1 not in `removed` (ascending, in range, no repeats: checked).
std::vector<int64_t> kept_indices(int64_t n, const std::vector<int64_t>& removed) {
  std::vector<bool> gone(size_t(n), false);
  for (size_t i = 0; i < removed.size(); ++i) {
    const int64_t r = removed[i];
    if (r < 0 || r >= n || (i > 0 && r <= removed[i - 1]))
      throw Error("structured", "removal plan is not ascending indices below " + std::to_string(n));
    gone[size_t(r)] = true;
  }
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i)
    if (!gone[size_t(i)]) keep.push_back(i);
  return keep;
}

// Rows (blocks of `width` rows each) of W [rows, cols] or of a vector, in `keep` order.
Tensor keep_rows(const Tensor& w, const std::vector<int64_t>& keep, int64_t width) {
  if (w.empty()) return w;
  const int64_t cols = w.ndim() == 2 ? w.dim(1) : 1;
  Shape shape = w.shape();
  shape[0] = int64_t(keep.size()) * width;
  Tensor out = Tensor::zeros(DType::F32, shape, w.name());
  const float* src = w.as<float>();
  float* dst = out.mutable_as<float>();
  for (size_t k = 0; k < keep.size(); ++k)
    std::memcpy(dst + int64_t(k) * width * cols, src + keep[k] * width * cols,
                size_t(width * cols) * sizeof(float));
  return out;
}

// Columns (blocks of `width`) of W [rows, cols], in `keep` order.
Tensor keep_cols(const Tensor& w, const std::vector<int64_t>& keep, int64_t width) {
  const int64_t rows = w.dim(0), cols = w.dim(1), kept = int64_t(keep.size()) * width;
  Tensor out = Tensor::zeros(DType::F32, {rows, kept}, w.name());
  const float* src = w.as<float>();
  float* dst = out.mutable_as<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (size_t k = 0; k < keep.size(); ++k)
      std::memcpy(dst + r * kept + int64_t(k) * width, src + r * cols + keep[k] * width,
                  size_t(width) * sizeof(float));
  return out;
}

void check_plan(const LlamaModel& m, const std::vector<std::vector<int64_t>>& removed) {
  if (removed.size() != m.layers.size())
    throw Error("structured", "removal plan covers " + std::to_string(removed.size()) +
                                  " layers, the model has " + std::to_string(m.layers.size()));
  for (const auto& r : removed)
    if (r.size() != removed.front().size())
      throw Error("structured", "every layer must lose the same number of units");
}

}  // namespace

void remove_heads(LlamaModel& m, const std::vector<std::vector<int64_t>>& removed) {
  check_plan(m, removed);
  const LlamaConfig& c = m.cfg;
  const HeadUnits u = head_units(c);
  const int64_t qw = u.q_width(c);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    LlamaLayer& L = m.layers[l];
    const std::vector<int64_t> keep = kept_indices(u.count, removed[l]);
    L.wq = keep_rows(L.wq, keep, qw);
    L.bq = keep_rows(L.bq, keep, qw);
    L.wo = keep_cols(L.wo, keep, qw);
    if (u.with_kv) {  // one k/v head per unit
      L.wk = keep_rows(L.wk, keep, c.head_dim);
      L.wv = keep_rows(L.wv, keep, c.head_dim);
      L.bk = keep_rows(L.bk, keep, c.head_dim);
      L.bv = keep_rows(L.bv, keep, c.head_dim);
    }
  }
  m.cfg = config_without_heads(c, int64_t(removed.front().size()));
}

void remove_channels(LlamaModel& m, const std::vector<std::vector<int64_t>>& removed) {
  check_plan(m, removed);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    LlamaLayer& L = m.layers[l];
    const std::vector<int64_t> keep = kept_indices(m.cfg.hidden_dim, removed[l]);
    L.w_gate = keep_rows(L.w_gate, keep, 1);
    L.w_up = keep_rows(L.w_up, keep, 1);
    L.w_down = keep_cols(L.w_down, keep, 1);
  }
  m.cfg = config_without_channels(m.cfg, int64_t(removed.front().size()));
}

}  // namespace mcw
