#include "engine/compress/rtn.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "engine/compress/algorithm_params.h"
#include "engine/core/error.h"

namespace mcw {

// Per-tensor clipping: the same search as per group, over the whole matrix at once.
static AffineParams per_tensor_params(const float* w, int64_t rows, int64_t cols,
                                      const double* col_weight, const RtnOptions& opt) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < rows * cols; ++i) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
  AffineParams best = affine_params_range(lo, hi, opt.bits, opt.symmetric);
  if (!opt.clip.enabled) return best;
  auto total_error = [&](const AffineParams& p) {
    double e = 0;
    for (int64_t r = 0; r < rows; ++r)
      e += affine_error(w + r * cols, cols, 1, col_weight, p, opt.bits);
    return e;
  };
  double best_err = total_error(best);
  const int steps = int((1.0f - opt.clip.min_shrink) / opt.clip.step + 1e-4f);
  for (int k = 1; k <= steps; ++k) {
    const AffineParams p =
        affine_params_range(lo, hi, opt.bits, opt.symmetric, 1.0f - float(k) * opt.clip.step);
    const double e = total_error(p);
    if (e < best_err) best_err = e, best = p;
  }
  return best;
}

CompressedTensor quantize_rtn(const float* w, int64_t rows, int64_t cols, const RtnOptions& opt,
                              const double* col_weight, const CancelToken* cancel,
                              std::string name) {
  check_affine_bits(name, "rtn", opt.bits);
  check_clip_search(name, "rtn", opt.clip);
  if (rows <= 0 || cols <= 0)
    throw Error(name, "rtn needs a non-empty weight, got " + std::to_string(rows) + "x" +
                          std::to_string(cols));
  const int64_t gs = opt.scope == QuantScope::Group ? opt.group_size : cols;
  check_group_size(name, "rtn", gs, cols);
  const int64_t groups = cols / gs;

  CompressedTensor out;
  out.name = std::move(name);
  out.rows = rows, out.cols = cols;
  out.coding = WeightCoding::Affine;
  out.bits = opt.bits, out.group_size = gs, out.symmetric = opt.symmetric;
  out.scales.resize(size_t(rows * groups));
  if (!opt.symmetric) out.zeros.resize(size_t(rows * groups));
  std::vector<uint8_t> q(size_t(rows * cols));

  AffineParams shared;
  if (opt.scope == QuantScope::PerTensor)
    shared = per_tensor_params(w, rows, cols, col_weight, opt);

  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, rows), [&](const tbb::blocked_range<int64_t>& rr) {
        for (int64_t r = rr.begin(); r < rr.end(); ++r) {
          if (cancel) cancel->throw_if_cancelled();
          for (int64_t g = 0; g < groups; ++g) {
            const float* wg = w + r * cols + g * gs;
            const AffineParams p =
                opt.scope == QuantScope::PerTensor
                    ? shared
                    : affine_params_search(wg, gs, 1, col_weight ? col_weight + g * gs : nullptr,
                                           opt.bits, opt.symmetric, opt.clip);
            out.scales[size_t(r * groups + g)] = p.scale;
            if (!opt.symmetric) out.zeros[size_t(r * groups + g)] = p.zero;
            for (int64_t c = 0; c < gs; ++c)
              q[size_t(r * cols + g * gs + c)] = affine_code(wg[c], p, opt.bits);
          }
        }
      });
  out.codes = pack_codes(q.data(), q.size(), opt.bits);
  return out;
}

CompressedTensor encode_affine(const float* w, int64_t rows, int64_t cols, int64_t group_size,
                               int bits, bool symmetric, const std::vector<AffineParams>& params,
                               std::string name) {
  check_affine_bits(name, "affine coding", bits);
  check_group_size(name, "affine coding", group_size, cols);
  const int64_t groups = cols / group_size;
  if (params.size() != size_t(rows * groups))
    throw Error(name, "affine coding needs " + std::to_string(rows * groups) + " grids, got " +
                          std::to_string(params.size()));
  CompressedTensor out;
  out.name = std::move(name);
  out.rows = rows, out.cols = cols;
  out.coding = WeightCoding::Affine;
  out.bits = bits, out.group_size = group_size, out.symmetric = symmetric;
  out.scales.resize(params.size());
  if (!symmetric) out.zeros.resize(params.size());
  std::vector<uint8_t> q(size_t(rows * cols));
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, rows), [&](const tbb::blocked_range<int64_t>& rr) {
        for (int64_t r = rr.begin(); r < rr.end(); ++r)
          for (int64_t c = 0; c < cols; ++c)
            q[size_t(r * cols + c)] =
                affine_code(w[r * cols + c], params[size_t(r * groups + c / group_size)], bits);
      });
  for (size_t i = 0; i < params.size(); ++i) {
    out.scales[i] = params[i].scale;
    if (!symmetric) out.zeros[i] = params[i].zero;
  }
  out.codes = pack_codes(q.data(), q.size(), bits);
  return out;
}

// The recipe's "rtn" (algorithm.h).
namespace {

CompressedTensor rtn_stage_layer(LayerJob& job) {
  const nlohmann::json& p = job.params;
  RtnOptions o;
  o.bits = p["bits"].get<int>();
  o.symmetric = p["symmetric"].get<bool>();
  const int g = p["group_size"].get<int>();
  o.scope = g == 0 ? QuantScope::PerChannel : g < 0 ? QuantScope::PerTensor : QuantScope::Group;
  o.group_size = g > 0 ? g : 128;
  o.clip.enabled = p["mse_clip"].get<bool>();
  return quantize_rtn(job.w.as<float>(), job.w.dim(0), job.w.dim(1), o, nullptr, job.cancel, job.name);
}

LayerCost rtn_cost(const nlohmann::json& p, const CostShape& s) {
  const double n = s.rows * s.cols;
  const double clip_tries = algo::param(p, "mse_clip", false) ? 20 : 1;  // ~20 shrink factors
  return {algo::affine_stored_bytes(p, s.rows, s.cols), algo::per_weight_work_bytes(s.rows, s.cols),
          10 * n * clip_tries};
}

}  // namespace

CompressAlgorithm rtn_algorithm() {
  using namespace algo;
  return {.name = "rtn",
          .kind = "quantize",
          .help = "round-to-nearest quantisation",
          .params = {bits({2, 3, 4, 8}, 4), group(128), flag("symmetric", false, "symmetric (no zero point)"),
                     flag("mse_clip", false, "search the clipping range that minimises the error")},
          .needs = needs_nothing,
          .compress_layer = rtn_stage_layer,
          .cost = rtn_cost};
}

}  // namespace mcw
