#include "engine/compress/gptq.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/compress/algorithm_params.h"
#include "engine/compress/hessian_factor.h"
#include "engine/compress/parallel_rows.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/gemm.h"

namespace mcw {

static void check_gptq(const std::string& name, int64_t rows, int64_t cols, const LayerStats& stats,
                       const GptqOptions& opt) {
  check_affine_bits(name, "gptq", opt.bits);
  check_clip_search(name, "gptq", opt.clip);
  if (rows <= 0 || cols <= 0)
    throw Error(name, "gptq needs a non-empty weight, got " + std::to_string(rows) + "x" +
                          std::to_string(cols));
  if (stats.cols != cols || stats.xtx.size() != size_t(cols) * size_t(cols))
    throw Error(name, "gptq calibration statistics are for " + std::to_string(stats.cols) +
                          " input columns (xtx of " + std::to_string(stats.xtx.size()) +
                          " values), the weight has " + std::to_string(cols));
  if (!(opt.percdamp >= 0.0) || !std::isfinite(opt.percdamp))
    throw Error(name, "gptq percdamp must be a finite number >= 0");
  if (opt.block_size <= 0) throw Error(name, "gptq block size must be positive");
  if (!(opt.outlier_threshold >= 0.0)) throw Error(name, "gptq outlier threshold must be >= 0");
  if (!(opt.outlier_fraction >= 0.0 && opt.outlier_fraction <= 1.0))
    throw Error(name, "gptq outlier fraction must be in [0, 1]");
  if (std::isfinite(opt.outlier_threshold) || opt.outlier_fraction > 0)
    if (uint64_t(rows) * uint64_t(cols) > uint64_t(UINT32_MAX))
      throw Error(name, "outlier indices are 32-bit; the weight has " +
                            std::to_string(uint64_t(rows) * uint64_t(cols)) + " values");
  for (double v : stats.xtx)
    if (!std::isfinite(v)) throw Error(name, "gptq calibration statistics contain NaN or inf");
}

void spqr_leave_one_out_gain(const float* x, const float* d, int64_t n, int bits, bool symmetric,
                             double* gain) {
  // The range of the grid is [min(0, min x), max(0, max x)]: leaving a weight out moves it
  // only when that weight is the unique minimum or maximum.
  int64_t at_lo = 0, at_hi = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i] < x[at_lo]) at_lo = i;
    if (x[i] > x[at_hi]) at_hi = i;
  }
  float lo2 = 0, hi2 = 0;  // the range without at_lo / at_hi
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    if (i != at_lo) lo2 = std::min(lo2, x[i]);
    if (i != at_hi) hi2 = std::max(hi2, x[i]);
  }
  auto scaled_sq = [&](const AffineParams& p, int64_t i) {
    const double e = (double(x[i]) - affine_round(x[i], p, bits)) / d[i];
    return e * e;
  };
  const AffineParams base = affine_params_range(lo, hi, bits, symmetric);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += gain[i] = scaled_sq(base, i);
  for (int side = 0; side < 2; ++side) {
    const int64_t j = side ? at_hi : at_lo;
    const AffineParams p = side ? affine_params_range(lo, hi2, bits, symmetric)
                                : affine_params_range(lo2, hi, bits, symmetric);
    if (p.scale == base.scale && p.zero == base.zero) continue;
    double rest = 0;
    for (int64_t i = 0; i < n; ++i)
      if (i != j) rest += scaled_sq(p, i);
    gain[j] = total - rest;
  }
}

namespace {

// What both sweeps of a run share: the column order and the factor of H⁻¹.
struct GptqSetup {
  int64_t rows = 0, cols = 0, gs = 0, groups = 0, block = 0;
  bool static_groups = false;
  std::vector<int64_t> perm;
  std::vector<uint8_t> dead;  // per original column
  std::vector<float> u;       // rows of U, in the permuted order
  double percdamp = 0;
  HessianFactorReport factor;
};

GptqSetup prepare(int64_t rows, int64_t cols, const LayerStats& stats, const GptqOptions& opt,
                  const CancelToken* cancel, const std::string& name) {
  GptqSetup s;
  s.rows = rows, s.cols = cols;
  s.gs = opt.group_size == 0 ? cols : opt.group_size;
  check_group_size(name, "gptq", s.gs, cols);
  s.groups = cols / s.gs, s.block = std::min(opt.block_size, cols);
  s.static_groups = opt.static_groups && s.groups > 1;
  s.dead.resize(size_t(cols));
  for (int64_t j = 0; j < cols; ++j) s.dead[size_t(j)] = stats.xtx[size_t(j * cols + j)] == 0.0;
  s.perm.resize(size_t(cols));
  std::iota(s.perm.begin(), s.perm.end(), 0);
  if (opt.act_order)
    std::stable_sort(s.perm.begin(), s.perm.end(), [&](int64_t a, int64_t b) {
      const double ha = s.dead[size_t(a)] ? 1.0 : stats.xtx[size_t(a * cols + a)];
      const double hb = s.dead[size_t(b)] ? 1.0 : stats.xtx[size_t(b * cols + b)];
      return ha > hb;
    });
  const std::vector<int64_t> identity;
  const bool sorted = std::is_sorted(s.perm.begin(), s.perm.end());
  s.percdamp = factor_dampened(stats.xtx, cols, sorted ? identity : s.perm, s.dead, opt.percdamp,
                               opt.factor_tolerance, s.u, &s.factor, cancel, name, "gptq");
  return s;
}

// The working weights: dead columns zeroed, columns in the permuted order.
std::vector<float> working_weights(const float* w, const GptqSetup& s) {
  std::vector<float> wk(size_t(s.rows * s.cols));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, s.rows, 16), [&](const auto& rr) {
    for (int64_t r = rr.begin(); r < rr.end(); ++r)
      for (int64_t k = 0; k < s.cols; ++k) {
        const int64_t c = s.perm[size_t(k)];
        wk[size_t(r * s.cols + k)] = s.dead[size_t(c)] ? 0.0f : w[r * s.cols + c];
      }
  });
  return wk;
}

// SpQR's scale of the threshold: mean over columns of var(W[:, c]) / U_cc² (unbiased
// variance over the rows, as torch.var).
double outlier_scale(const std::vector<float>& wk, const GptqSetup& s) {
  // Two passes over the rows (row-major, as the weights lie), per-column sums in f64.
  std::vector<double> mean(static_cast<size_t>(s.cols), 0.0), sq(static_cast<size_t>(s.cols), 0.0);
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t k = 0; k < s.cols; ++k) mean[size_t(k)] += wk[size_t(r * s.cols + k)];
  for (double& m : mean) m /= double(s.rows);
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t k = 0; k < s.cols; ++k) {
      const double d = wk[size_t(r * s.cols + k)] - mean[size_t(k)];
      sq[size_t(k)] += d * d;
    }
  double sum = 0;
  for (int64_t k = 0; k < s.cols; ++k) {
    const double var = s.rows > 1 ? sq[size_t(k)] / double(s.rows - 1) : 0.0;
    const double ukk = s.u[size_t(k * s.cols + k)];
    sum += var / (ukk * ukk);
  }
  return sum / double(s.cols);
}

struct Sweep {
  std::vector<uint8_t> codes;           // permuted column order
  std::vector<AffineParams> params;     // [rows, groups]
  std::vector<uint8_t> kept;            // outlier flags, permuted order (empty: none)
  std::vector<uint32_t> outlier_index;  // original order, ascending (take_outliers)
  std::vector<uint16_t> outlier_value;
};

// Moves the kept weights out of the swept working weights (where each stayed as it was
// when its column came) into the sparse list CompressedTensor stores.
void take_outliers(Sweep& sw, const std::vector<float>& wk, const GptqSetup& s) {
  if (sw.kept.empty()) return;
  std::vector<int64_t> pos(static_cast<size_t>(s.cols));
  for (int64_t k = 0; k < s.cols; ++k) pos[size_t(s.perm[size_t(k)])] = k;
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t c = 0; c < s.cols; ++c) {
      const size_t from = size_t(r * s.cols + pos[size_t(c)]);
      if (!sw.kept[from]) continue;
      sw.outlier_index.push_back(uint32_t(r * s.cols + c));
      sw.outlier_value.push_back(f32_to_f16(std::clamp(wk[from], -65504.0f, 65504.0f)));
    }
  std::vector<uint8_t>().swap(sw.kept);
}

// One row's grid for a group of values x (scaled by d for the outlier test): SpQR's
// likely outliers are replaced by the mean of the others before the grid is fitted.
AffineParams fit_group(float* x, const float* d, int64_t n, double threshold,
                       const GptqOptions& opt, std::vector<double>& gain) {
  if (std::isfinite(threshold)) {
    spqr_leave_one_out_gain(x, d, n, opt.bits, opt.symmetric, gain.data());
    double sum = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; ++i)
      if (!(gain[size_t(i)] > threshold)) sum += x[i], ++count;
    const float mean = float(sum / double(std::max<int64_t>(count, 1)));
    for (int64_t i = 0; i < n; ++i)
      if (gain[size_t(i)] > threshold) x[i] = mean;
  }
  return affine_params_search(x, n, 1, nullptr, opt.bits, opt.symmetric, opt.clip);
}

// The column loop over the working weights wk (consumed). `threshold` is absolute (inf:
// no outliers); `scores`, when given, receives every weight's scaled error before any
// outlier decision.
Sweep sweep(std::vector<float>& wk, const GptqSetup& s, const GptqOptions& opt, double threshold,
            float* scores, const CancelToken* cancel) {
  const int64_t rows = s.rows, cols = s.cols, gs = s.gs, G = s.groups, B = s.block;
  const float* u = s.u.data();
  const bool outliers = std::isfinite(threshold);
  Sweep out;
  out.codes.resize(size_t(rows * cols));
  out.params.resize(size_t(rows * G));
  if (outliers) out.kept.assign(size_t(rows * cols), 0);

  std::vector<int64_t> pos(static_cast<size_t>(cols));  // permuted position of column c
  for (int64_t k = 0; k < cols; ++k) pos[size_t(s.perm[size_t(k)])] = k;
  if (s.static_groups)
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, rows), [&](const tbb::blocked_range<int64_t>& rr) {
          std::vector<float> x(static_cast<size_t>(gs)), d(static_cast<size_t>(gs));
          std::vector<double> gain(static_cast<size_t>(gs));
          for (int64_t r = rr.begin(); r < rr.end(); ++r)
            for (int64_t g = 0; g < G; ++g) {
              for (int64_t i = 0; i < gs; ++i) {
                const int64_t k = pos[size_t(g * gs + i)];
                x[size_t(i)] = wk[size_t(r * cols + k)], d[size_t(i)] = u[k * cols + k];
              }
              out.params[size_t(r * G + g)] =
                  fit_group(x.data(), d.data(), gs, threshold, opt, gain);
            }
        });

  std::vector<float> negerr(size_t(rows * B));
  for (int64_t i1 = 0; i1 < cols; i1 += B) {
    if (cancel) cancel->throw_if_cancelled();
    const int64_t i2 = std::min(i1 + B, cols), count = i2 - i1;
    // The hot loop reads plain locals: through the closure's references every opaque call
    // (fit_group, the f16 rounding) would make the compiler reload them all.
    uint8_t* const codes = out.codes.data();
    uint8_t* const kept = outliers ? out.kept.data() : nullptr;
    AffineParams* const params = out.params.data();
    float* const w_all = wk.data();
    float* const ne_all = negerr.data();
    const int64_t* const perm = s.perm.data();
    const bool static_groups = s.static_groups;
    const int bits = opt.bits;
    parallel_rows(
        rows, [ =, &opt ](int64_t r0, int64_t r1) __attribute__((always_inline)) {
          std::vector<float> group(static_cast<size_t>(gs)), d(static_cast<size_t>(gs));
          std::vector<double> gain(static_cast<size_t>(gs));
          // Each row's columns form one long dependency chain (two divisions, a rounding, and
          // the update of the next column), so rows are taken a few at once, column by column:
          // their chains overlap in the core. Every row's arithmetic is unchanged.
          constexpr int64_t kRowsAtOnce = 16;
          for (int64_t ra = r0; ra < r1; ra += kRowsAtOnce)
            for (int64_t i = 0; i < count; ++i)
              for (int64_t r = ra, k = i1 + i; r < std::min(r1, ra + kRowsAtOnce); ++r) {
                float* const row = w_all + r * cols;
                float* const ne = ne_all + r * B;
                if (!static_groups && k % gs == 0) {
                  // The group's current weights: columns past this block still lack this
                  // block's updates so far, which are added here.
                  for (int64_t c = k; c < k + gs; ++c) {
                    float v = row[c];
                    if (c >= i2)
                      for (int64_t p = i1; p < k; ++p) v += ne[p - i1] * u[size_t(p * cols + c)];
                    group[size_t(c - k)] = v, d[size_t(c - k)] = u[c * cols + c];
                  }
                  params[r * G + k / gs] =
                      fit_group(group.data(), d.data(), gs, threshold, opt, gain);
                }
                const AffineParams p = params[r * G + (static_groups ? perm[k] / gs : k / gs)];
                const float v = row[k], ukk = u[size_t(k * cols + k)];
                const uint8_t q = affine_code(v, p, bits);
                codes[r * cols + k] = q;
                float e = (v - affine_value(q, p)) / ukk;
                if (scores) scores[r * cols + k] = e * e;
                if (outliers && double(e) * e > threshold) {
                  // Kept as it stands now; only its f16 rounding is left to spread. row[k] is
                  // not touched again, and is read back as the outlier's value.
                  kept[r * cols + k] = 1;
                  e = (v - f16_to_f32(f32_to_f16(std::clamp(v, -65504.0f, 65504.0f)))) / ukk;
                }
                ne[i] = -e;
                const float* uk = u + k * cols;
                for (int64_t j = k + 1; j < i2; ++j) row[j] -= e * uk[j];
              }
        });
    if (i2 < cols)
      matmul_strided(negerr.data(), B, u + i1 * cols + i2, cols, wk.data() + i2, cols, rows,
                     cols - i2, count, /*accumulate=*/true);
  }
  return out;
}

}  // namespace

// SpQR sweeps for about k_target outliers: the threshold is the plain sweep's score at a
// rank, and the rank is scaled by target / kept until the count is within 5 % (at most four
// sweeps; the closest wins). Every kept outlier stops its error from reaching later
// columns, so the SpQR sweep keeps fewer than the plain scores say.
static Sweep sweep_for_fraction(const float* w, const GptqSetup& s, const GptqOptions& opt,
                                uint64_t k_target, double& threshold, const CancelToken* cancel) {
  const uint64_t n = uint64_t(s.rows) * uint64_t(s.cols);
  std::vector<float> scores(static_cast<size_t>(n));
  {
    std::vector<float> wk = working_weights(w, s);
    sweep(wk, s, opt, INFINITY, scores.data(), cancel);
  }
  std::sort(scores.begin(), scores.end(), std::greater<float>());
  Sweep best;
  uint64_t best_miss = UINT64_MAX;
  double rank = double(k_target);
  for (int round = 0; round < 4; ++round) {
    const uint64_t at = uint64_t(std::llround(rank));
    const double t = at >= n ? -1.0 : double(scores[size_t(at)]);  // -1: every weight
    std::vector<float> wk = working_weights(w, s);
    Sweep sw = sweep(wk, s, opt, t, nullptr, cancel);
    take_outliers(sw, wk, s);
    const uint64_t kept = sw.outlier_index.size();
    const uint64_t miss = kept > k_target ? kept - k_target : k_target - kept;
    if (miss < best_miss) best = std::move(sw), best_miss = miss, threshold = t;
    if (double(miss) <= std::max(1.0, 0.05 * double(k_target)) || at >= n) break;
    rank = std::min(double(n), rank * double(k_target) / double(std::max<uint64_t>(kept, 1)));
  }
  return best;
}

CompressedTensor quantize_gptq(const float* w, int64_t rows, int64_t cols, const LayerStats& stats,
                               const GptqOptions& opt, const CancelToken* cancel, std::string name,
                               GptqReport* report) {
  check_gptq(name, rows, cols, stats, opt);
  const GptqSetup s = prepare(rows, cols, stats, opt, cancel, name);
  const uint64_t n = uint64_t(rows) * uint64_t(cols);
  const uint64_t k_target =
      std::min<uint64_t>(n, uint64_t(std::llround(opt.outlier_fraction * double(n))));
  double relative = opt.outlier_threshold;
  Sweep sw;
  if (std::isfinite(relative) || k_target > 0) {
    const double scale = outlier_scale(working_weights(w, s), s);
    if (std::isfinite(relative)) {
      std::vector<float> wk = working_weights(w, s);
      sw = sweep(wk, s, opt, relative * scale, nullptr, cancel);
      take_outliers(sw, wk, s);
    } else {
      double threshold = INFINITY;
      sw = sweep_for_fraction(w, s, opt, k_target, threshold, cancel);
      relative = scale > 0 ? threshold / scale : INFINITY;
    }
  } else {
    std::vector<float> wk = working_weights(w, s);
    sw = sweep(wk, s, opt, INFINITY, nullptr, cancel);
  }

  const int64_t gs = s.gs, G = s.groups;
  CompressedTensor out;
  out.name = std::move(name);
  out.rows = rows, out.cols = cols;
  out.coding = WeightCoding::Affine;
  out.bits = opt.bits, out.group_size = gs, out.symmetric = opt.symmetric;
  if (!std::is_sorted(s.perm.begin(), s.perm.end())) {  // codes back in the original order
    std::vector<uint8_t> q(static_cast<size_t>(n));
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& rr) {
      for (int64_t r = rr.begin(); r < rr.end(); ++r)
        for (int64_t k = 0; k < cols; ++k)
          q[size_t(r * cols + s.perm[size_t(k)])] = sw.codes[size_t(r * cols + k)];
    });
    sw.codes = std::move(q);
  }
  out.codes = pack_codes(sw.codes.data(), sw.codes.size(), opt.bits);
  out.outlier_index = std::move(sw.outlier_index);
  out.outlier_value = std::move(sw.outlier_value);
  out.scales.resize(sw.params.size());
  if (!opt.symmetric) out.zeros.resize(sw.params.size());
  for (size_t i = 0; i < sw.params.size(); ++i) {
    out.scales[i] = sw.params[i].scale;
    if (!opt.symmetric) out.zeros[i] = sw.params[i].zero;
  }
  if (opt.act_order && !s.static_groups && G > 1) {
    out.g_idx.resize(size_t(cols));
    for (int64_t k = 0; k < cols; ++k) out.g_idx[size_t(s.perm[size_t(k)])] = int32_t(k / gs);
  }
  if (report) *report = {s.percdamp, relative, uint64_t(out.outlier_index.size()), s.factor};
  return out;
}

// The recipe's "gptq" (algorithm.h).
namespace {

CompressedTensor gptq_stage_layer(LayerJob& job) {
  const nlohmann::json& p = job.params;
  GptqOptions o;
  o.bits = p["bits"].get<int>();
  o.symmetric = p["symmetric"].get<bool>();
  o.group_size = p["group_size"].get<int>();
  o.percdamp = p["damp"].get<double>();
  o.block_size = p["block_size"].get<int64_t>();
  o.act_order = p["act_order"].get<bool>();
  o.static_groups = p["static_groups"].get<bool>();
  if (const double t = p["outlier_threshold"].get<double>(); t > 0) o.outlier_threshold = t;
  o.outlier_fraction = p["outlier_fraction"].get<double>();
  GptqReport report;
  CompressedTensor q = quantize_gptq(job.w.as<float>(), job.w.dim(0), job.w.dim(1), *job.stats, o,
                                     job.cancel, job.name, &report);
  job.note = dampening_note(o.percdamp, report.percdamp, report.factor);
  return q;
}

LayerCost gptq_cost(const nlohmann::json& p, const CostShape& s) {
  using algo::param;
  const double r = s.rows, c = s.cols, n = r * c, c2 = c * c;
  const double fraction = param(p, "outlier_fraction", 0.0);
  double stored = algo::affine_stored_bytes(p, r, c) + fraction * n * (4 + 2);  // index + f16 value
  if (param(p, "act_order", false) && !param(p, "static_groups", false)) stored += 4 * c;  // g_idx
  // The f32 factor, and an f64 copy of H beside it when the f32 check fails (the budget is
  // for that worst case); working weights,
  // codes, block errors, params; outliers: the plain sweep's scores and flags, or flags.
  const double block = std::min<double>(param(p, "block_size", 128), c);
  double work = 8 * c2 + 4 * c2 + 4 * n + n + 4 * r * block + 16 * r * algo::affine_groups(p, c);
  work += fraction > 0 ? 5 * n : param(p, "outlier_threshold", 0.0) > 0 ? n : 0;
  // Cholesky c³/3 + triangular inverse c³/3, then each column's error propagated to the
  // columns after it in every row: r·c²/2 multiply-adds (twice for an outlier fraction).
  const double sweeps = fraction > 0 ? 2 : 1;
  return {stored, work, 2 * c2 * c / 3 + sweeps * r * c2 + 10 * n};
}

}  // namespace

CompressAlgorithm gptq_algorithm() {
  using namespace algo;
  return {.name = "gptq",
          .kind = "quantize",
          .help = "GPTQ: quantise column by column, correcting with the Hessian",
          .params =
              {bits({2, 3, 4, 8}, 4), group(128, /*per_tensor=*/false),
               flag("symmetric", false, "symmetric (no zero point)"),
               flag("act_order", false, "quantise columns in order of decreasing Hessian diagonal"),
               flag("static_groups", false, "fit every group's grid on the original weights first"),
               number("damp", 0.01, 0.0, 1.0, "dampening, fraction of the mean Hessian diagonal"),
               integer("block_size", 128, 1, 4096, "columns per lazy block update"),
               number("outlier_threshold", 0.0, 0.0, 1e6,
                      "SpQR outliers: keep in f16 the weights whose scaled error exceeds this "
                      "times the layer's mean (0.2 in SpQR's runs; 0: off)"),
               number("outlier_fraction", 0.0, 0.0, 0.1,
                      "SpQR outliers with the threshold set for about this share of weights")},
          .needs = needs_gram,
          .compress_layer = gptq_stage_layer,
          .cost = gptq_cost};
}

}  // namespace mcw
