#include "engine/compress/structured_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/core/error.h"

namespace mcw {

HeadUnits head_units(const LlamaConfig& c, int64_t layer) {
  const BlockShape b = c.block(layer);
  if (c.n_kv_heads > 1) return {b.n_kv_heads, b.n_heads / b.n_kv_heads, true};
  return {b.n_heads, 1, false};
}

int64_t units_to_remove(int64_t units, double fraction) {
  const int64_t r = int64_t(std::llround(fraction * double(units)));
  return std::clamp<int64_t>(r, 0, std::max<int64_t>(units - 1, 0));
}

namespace {

void check_counts(const LlamaConfig& c, const std::vector<int64_t>& removed) {
  if (int64_t(removed.size()) != c.n_layers)
    throw Error("structured", "removal plan covers " + std::to_string(removed.size()) +
                                  " layers, the model has " + std::to_string(c.n_layers));
}

}  // namespace

LlamaConfig config_without_heads(const LlamaConfig& c, const std::vector<int64_t>& removed) {
  check_counts(c, removed);
  std::vector<BlockShape> shapes;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const HeadUnits u = head_units(c, l);
    BlockShape b = c.block(l);
    const int64_t r = removed[size_t(l)];
    if (r < 0 || r >= u.count)
      throw Error("structured", "layer " + std::to_string(l) + " cannot lose " + std::to_string(r) +
                                    " of its " + std::to_string(u.count) + " attention units");
    b.n_heads -= r * u.heads_per_unit;
    if (u.with_kv) b.n_kv_heads -= r;
    shapes.push_back(b);
  }
  LlamaConfig out = c;
  out.set_block_shapes(std::move(shapes));
  return out;
}

LlamaConfig config_without_channels(const LlamaConfig& c, const std::vector<int64_t>& removed) {
  check_counts(c, removed);
  std::vector<BlockShape> shapes;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    BlockShape b = c.block(l);
    const int64_t r = removed[size_t(l)];
    if (r < 0 || r >= b.hidden_dim)
      throw Error("structured", "layer " + std::to_string(l) + " cannot lose " + std::to_string(r) +
                                    " of its " + std::to_string(b.hidden_dim) + " MLP channels");
    b.hidden_dim -= r;
    shapes.push_back(b);
  }
  LlamaConfig out = c;
  out.set_block_shapes(std::move(shapes));
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
}

// Counts of a plan that changes only `layer`.
std::vector<int64_t> only(const LlamaConfig& c, int64_t layer, int64_t count) {
  std::vector<int64_t> n(size_t(c.n_layers), 0);
  n[size_t(layer)] = count;
  return n;
}

}  // namespace

void remove_layer_heads(LlamaModel& m, int64_t layer, const std::vector<int64_t>& removed) {
  const LlamaConfig c = m.cfg;
  LlamaConfig out =
      config_without_heads(c, only(c, layer, int64_t(removed.size())));  // checks the count
  const HeadUnits u = head_units(c, layer);
  const int64_t qw = u.q_width(c);
  const std::vector<int64_t> keep = kept_indices(u.count, removed);
  LlamaLayer& L = m.layers[size_t(layer)];
  L.wq = keep_rows(L.wq, keep, qw);
  L.bq = keep_rows(L.bq, keep, qw);
  L.wo = keep_cols(L.wo, keep, qw);
  if (u.with_kv) {  // one k/v head per unit
    L.wk = keep_rows(L.wk, keep, c.head_dim);
    L.wv = keep_rows(L.wv, keep, c.head_dim);
    L.bk = keep_rows(L.bk, keep, c.head_dim);
    L.bv = keep_rows(L.bv, keep, c.head_dim);
  }
  m.cfg = std::move(out);
}

void remove_layer_channels(LlamaModel& m, int64_t layer, const std::vector<int64_t>& removed) {
  LlamaConfig out = config_without_channels(m.cfg, only(m.cfg, layer, int64_t(removed.size())));
  const std::vector<int64_t> keep = kept_indices(m.cfg.hidden_dim_of(layer), removed);
  LlamaLayer& L = m.layers[size_t(layer)];
  L.w_gate = keep_rows(L.w_gate, keep, 1);
  L.w_up = keep_rows(L.w_up, keep, 1);
  L.b_up = keep_rows(L.b_up, keep, 1);  // GPT-2's
  L.w_down = keep_cols(L.w_down, keep, 1);
  m.cfg = std::move(out);
}

void remove_heads(LlamaModel& m, const std::vector<std::vector<int64_t>>& removed) {
  check_plan(m, removed);
  for (size_t l = 0; l < removed.size(); ++l) remove_layer_heads(m, int64_t(l), removed[l]);
}

void remove_channels(LlamaModel& m, const std::vector<std::vector<int64_t>>& removed) {
  check_plan(m, removed);
  for (size_t l = 0; l < removed.size(); ++l) remove_layer_channels(m, int64_t(l), removed[l]);
}

}  // namespace mcw
