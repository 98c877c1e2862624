#include "engine/search/sensitivity_cells.h"

#include <map>

#include "engine/compress/calibrate.h"
#include "engine/compress/layer_stats_accumulate.h"
#include "engine/kernels/gram.h"
#include "engine/search/block_forward.h"
#include "engine/search/bounded_parallel.h"
#include "engine/search/kl_meter.h"

namespace mcw {

namespace {

const Tensor& weight_of(const LlamaModel& m, const std::string& name) {
  for (const auto& [n, t] : m.named_tensors())
    if (n == name) return *t;
  throw Error("sensitivity scan", "the model has no tensor " + name);
}

// The model with the cell's one layer compressed; sets the cell's storage bits.
CompressionResult compress_cell(const CellWork& w, size_t cell) {
  SensitivityCell& c = w.table.cells[cell];
  const size_t l = cell / w.table.settings.size(), s = cell % w.table.settings.size();
  const Recipe r = scan_cell_recipe(w.table.settings[s], c.layer, w.table.layer_in_features[l]);
  CompressionResult res = compress_llama(w.base, r, w.tokens, w.opt.compress, {}, w.cancel);
  // Everything but the layer counts 16 bits per weight in the accounting.
  c.bits = res.storage_bits - (res.original_bits - 16 * w.table.layer_parameters[l]);
  return res;
}

void for_each_cell(const CellWork& w, const std::vector<size_t>& cells,
                   const std::function<void(size_t)>& fn) {
  bounded_parallel_for(
      int64_t(cells.size()), w.live, [&](int64_t i) { fn(cells[size_t(i)]); },
      [&](int64_t i) { w.finished(cells[size_t(i)]); },
      [&] { return w.cancel && w.cancel->cancelled(); });
  if (w.cancel) w.cancel->throw_if_cancelled();
}

// The measured windows: `windows` of `window` tokens end to end, as the KL meter lays them.
std::vector<std::span<const int32_t>> measured_windows(std::span<const int32_t> tokens,
                                                       int64_t windows, int64_t window) {
  const int64_t n = std::min<int64_t>(int64_t(tokens.size()), windows * window);
  std::vector<std::span<const int32_t>> out;
  for (const EvalWindow& e : eval_windows(n, {window, window}))
    out.push_back(tokens.subspan(size_t(e.begin), size_t(e.end - e.begin)));
  return out;
}

}  // namespace

int64_t block_of_layer(const std::string& name) {
  return std::stoll(name.substr(std::string("model.layers.").size()));
}

double measure_kl_cells(const CellWork& w, int64_t windows, int64_t window) {
  const KlMeter meter(w.base, w.tokens, window, windows, w.cancel,
                      w.opt.reuse_block_inputs ? &w.opt.block_inputs : nullptr);
  // With kept block inputs, the original's own score needs only the head.
  const double baseline =
      (w.opt.reuse_block_inputs ? meter.measure_from_block(w.base, w.base.cfg.n_layers, {}, w.cancel)
                                : meter.measure(w.base, {}, w.cancel))
          .perplexity;
  for_each_cell(w, w.todo, [&](size_t cell) {
    SensitivityCell& c = w.table.cells[cell];
    const CompressionResult res = compress_cell(w, cell);
    const KlMeasurement m =
        w.opt.reuse_block_inputs
            ? meter.measure_from_block(res.model, block_of_layer(c.layer), {}, w.cancel)
            : meter.measure(res.model, {}, w.cancel);
    c.kl = m.kl, c.perplexity = m.perplexity, c.top1 = m.top1;
  });
  return baseline;
}

void measure_layer_cells(const CellWork& w) {
  const int64_t window = std::min(w.opt.compress.calib_window, w.base.cfg.max_seq_len);
  const auto calib = calibration_windows(w.tokens, w.opt.compress.calib_windows, window);
  if (calib.empty()) throw Error("sensitivity scan", "the calibration text has fewer than 2 tokens");
  std::map<std::string, std::vector<size_t>> cells_of;  // layer -> its todo cells
  for (const size_t cell : w.todo) cells_of[w.table.cells[cell].layer].push_back(cell);
  std::map<std::string, LayerStats> stats;  // of the group being calibrated, by first name
  auto wanted = [&](const LinearGroup& g) {
    for (const std::string& n : g.names)
      if (cells_of.count(n)) return true;
    return false;
  };
  CalibrationHooks hooks;
  hooks.observe = [&](const LinearGroup& g, const float* x, int64_t rows) {
    if (!wanted(g)) return;
    LayerStats& s = stats[g.names.front()];
    if (s.cols == 0) s = make_layer_stats(g.in_features);
    accumulate(s, x, rows);
  };
  hooks.compress = [&](const LinearGroup& g) {  // measures; the model is left as it is
    if (!wanted(g)) return;
    const std::vector<double> h = std::move(stats.at(g.names.front()).xtx);
    stats.erase(g.names.front());
    for (const std::string& name : g.names) {
      const auto it = cells_of.find(name);
      if (it == cells_of.end()) continue;
      const Tensor original = weight_of(w.base, name).f32_copy();
      const int64_t rows = original.dim(0), cols = original.dim(1);
      const double norm = weighted_square_norm(original.as<float>(), rows, cols, h.data());
      for_each_cell(w, it->second, [&](size_t cell) {
        const CompressionResult res = compress_cell(w, cell);
        const float* q = weight_of(res.model, name).as<float>();
        const float* a = original.as<float>();
        std::vector<float> d(size_t(rows * cols));
        for (size_t i = 0; i < d.size(); ++i) d[i] = a[i] - q[i];
        const double err = weighted_square_norm(d.data(), rows, cols, h.data());
        w.table.cells[cell].error = norm > 0 ? err / norm : 0;
      });
    }
  };
  // The statistics compress_llama would gather for a one-layer recipe: the same windows
  // and the same activation dtype (bf16 between blocks for 16-bit models).
  CalibrationOptions calib_opt;
  const bool sixteen = !w.base.layers.empty() && w.base.layers[0].wq.dtype() != DType::F32;
  const auto a = w.opt.compress.activations;
  calib_opt.activations = a == CompressOptions::Activations::BF16 ||
                                  (a == CompressOptions::Activations::Auto && sixteen)
                              ? DType::BF16
                              : DType::F32;
  LlamaModel walk = w.base;  // shares the weights' bytes; the hooks change nothing
  sequential_calibrate(walk, calib, hooks, {}, w.cancel, calib_opt);
}

void measure_block_cells(const CellWork& w, int64_t windows, int64_t window) {
  const BlockInputs inputs(w.base, measured_windows(w.tokens, windows, window),
                           w.opt.block_inputs, {}, w.cancel);
  for_each_cell(w, w.todo, [&](size_t cell) {
    SensitivityCell& c = w.table.cells[cell];
    const CompressionResult res = compress_cell(w, cell);
    const int64_t block = block_of_layer(c.layer), D = w.base.cfg.dim;
    double err = 0, norm = 0;
    for (size_t win = 0; win < inputs.windows(); ++win) {
      if (w.cancel) w.cancel->throw_if_cancelled();
      const int64_t T = inputs.rows(win);
      std::vector<float> x(size_t(T * D)), y(size_t(T * D));
      inputs.get(block, win, x.data());
      llama_block(res.model, block, x.data(), T);
      inputs.get(block + 1, win, y.data());
      for (size_t i = 0; i < x.size(); ++i) {
        const double d = double(x[i]) - double(y[i]);
        err += d * d, norm += double(y[i]) * double(y[i]);
      }
    }
    c.error = norm > 0 ? err / norm : 0;
  });
}

}  // namespace mcw
