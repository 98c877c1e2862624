#include "engine/compress/kmeans.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "engine/compress/algorithm_params.h"
#include "engine/core/error.h"
#include "engine/core/half.h"

namespace mcw {
namespace {

// Nearest of the ascending centroids (ties to the lower one).
uint8_t nearest(float v, const std::vector<float>& c) {
  const auto it = std::lower_bound(c.begin(), c.end(), v);
  if (it == c.begin()) return 0;
  if (it == c.end()) return uint8_t(c.size() - 1);
  const size_t hi = size_t(it - c.begin());
  return (double(*it) - v) < (double(v) - c[hi - 1]) ? uint8_t(hi) : uint8_t(hi - 1);
}

double objective(const float* x, const double* wt, int64_t n, const std::vector<float>& c,
                 const std::vector<uint8_t>& a) {
  double e = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(x[i]) - c[a[size_t(i)]];
    e += wt[i] * d * d;
  }
  return e;
}

std::vector<float> quantile_init(const float* x, const double* wt, int64_t n, int k) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return x[a] < x[b]; });
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += wt[i];
  std::vector<float> c(static_cast<size_t>(k));
  double cum = 0;
  int64_t j = 0;
  for (int i = 0; i < k; ++i) {
    const double target = (double(i) + 0.5) / double(k) * total;
    while (j < n - 1 && cum + wt[order[size_t(j)]] < target) cum += wt[order[size_t(j)]], ++j;
    c[size_t(i)] = x[order[size_t(j)]];
  }
  return c;
}

std::vector<float> plusplus_init(const float* x, const double* wt, int64_t n, int k,
                                 uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto pick = [&](const std::vector<double>& mass) {
    const double total = std::accumulate(mass.begin(), mass.end(), 0.0);
    if (!(total > 0)) return int64_t(0);
    double t = u(rng) * total;
    for (int64_t i = 0; i < n; ++i) {
      t -= mass[size_t(i)];
      if (t < 0) return i;
    }
    return n - 1;
  };
  std::vector<double> mass(wt, wt + n);
  std::vector<float> c{x[pick(mass)]};
  std::vector<double> d2(static_cast<size_t>(n), INFINITY);
  while (int(c.size()) < k) {
    for (int64_t i = 0; i < n; ++i) {
      const double d = double(x[i]) - c.back();
      d2[size_t(i)] = std::min(d2[size_t(i)], d * d);
      mass[size_t(i)] = wt[i] * d2[size_t(i)];
    }
    c.push_back(x[pick(mass)]);  // all points covered: repeats, left empty by Lloyd
  }
  return c;
}

}  // namespace

Kmeans1d weighted_kmeans_1d(const float* x, const double* weight, int64_t n, int k, int iterations,
                            KmeansInit init, uint32_t seed, std::vector<double>* history) {
  if (k < 1 || k > 256)
    throw Error("kmeans", "cluster count must be 1..256, got " + std::to_string(k));
  if (n <= 0) throw Error("kmeans", "no values to cluster");
  std::vector<double> wt(static_cast<size_t>(n), 1.0);
  if (weight) {
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += std::max(weight[i], 0.0);
    if (total > 0)
      for (int64_t i = 0; i < n; ++i) wt[size_t(i)] = std::max(weight[i], 0.0);
  }
  Kmeans1d r;
  r.centroids = init == KmeansInit::Quantile ? quantile_init(x, wt.data(), n, k)
                                             : plusplus_init(x, wt.data(), n, k, seed);
  std::sort(r.centroids.begin(), r.centroids.end());
  r.assign.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) r.assign[size_t(i)] = nearest(x[i], r.centroids);
  std::vector<double> sw(static_cast<size_t>(k)), swx(static_cast<size_t>(k));
  for (int it = 0; it < iterations; ++it) {
    std::fill(sw.begin(), sw.end(), 0.0), std::fill(swx.begin(), swx.end(), 0.0);
    for (int64_t i = 0; i < n; ++i)
      sw[r.assign[size_t(i)]] += wt[size_t(i)], swx[r.assign[size_t(i)]] += wt[size_t(i)] * x[i];
    for (int j = 0; j < k; ++j)
      if (sw[size_t(j)] > 0) r.centroids[size_t(j)] = float(swx[size_t(j)] / sw[size_t(j)]);
    // Means of ordered clusters stay ordered; the sort only guards float ties.
    std::sort(r.centroids.begin(), r.centroids.end());
    bool changed = false;
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t a = nearest(x[i], r.centroids);
      changed |= a != r.assign[size_t(i)];
      r.assign[size_t(i)] = a;
    }
    r.iterations = it + 1;
    if (history) history->push_back(objective(x, wt.data(), n, r.centroids, r.assign));
    if (!changed) break;
  }
  r.objective = objective(x, wt.data(), n, r.centroids, r.assign);
  return r;
}

CompressedTensor quantize_kmeans(const float* w, int64_t rows, int64_t cols,
                                 const KmeansOptions& opt, const double* col_weight,
                                 const CancelToken* cancel, std::string name) {
  if (opt.bits < 1 || opt.bits > 8)
    throw Error(name, "bits must be 1..8 for kmeans, got " + std::to_string(opt.bits));
  if (rows <= 0 || cols <= 0) throw Error(name, "kmeans needs a non-empty weight");
  if (opt.iterations < 0 || opt.iterations > 10000)
    throw Error(name, "kmeans iterations must be 0..10000");
  const int64_t gs = opt.group_size == 0 ? cols : opt.group_size;
  if (gs <= 0 || cols % gs != 0)
    throw Error(name, "kmeans group size " + std::to_string(opt.group_size) +
                          " must be 0 (per row) or divide the " + std::to_string(cols) +
                          " input columns");
  const int64_t G = cols / gs;
  const int k = 1 << opt.bits;
  CompressedTensor out;
  out.name = std::move(name);
  out.rows = rows, out.cols = cols;
  out.coding = WeightCoding::Codebook;
  out.bits = opt.bits, out.group_size = gs;
  out.codebook.resize(size_t(rows * G * k));
  std::vector<uint8_t> q(size_t(rows * cols));
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, rows), [&](const tbb::blocked_range<int64_t>& rr) {
        for (int64_t r = rr.begin(); r < rr.end(); ++r) {
          if (cancel) cancel->throw_if_cancelled();
          for (int64_t g = 0; g < G; ++g) {
            const float* x = w + r * cols + g * gs;
            Kmeans1d km =
                weighted_kmeans_1d(x, col_weight ? col_weight + g * gs : nullptr, gs, k,
                                   opt.iterations, opt.init, opt.seed + uint32_t(r * G + g));
            // f16 codebook: round, keep ascending, then each weight takes its nearest entry.
            for (float& c : km.centroids)
              c = f16_to_f32(f32_to_f16(std::clamp(c, -65504.0f, 65504.0f)));
            std::sort(km.centroids.begin(), km.centroids.end());
            std::copy(km.centroids.begin(), km.centroids.end(),
                      out.codebook.begin() + (r * G + g) * k);
            for (int64_t c = 0; c < gs; ++c)
              q[size_t(r * cols + g * gs + c)] = nearest(x[c], km.centroids);
          }
        }
      });
  out.codes = pack_codes(q.data(), q.size(), opt.bits);
  return out;
}

// The recipe's "kmeans" (algorithm.h).
namespace {

CompressedTensor kmeans_stage_layer(LayerJob& job) {
  KmeansOptions o;
  o.bits = job.params["bits"].get<int>();
  o.iterations = job.params["iterations"].get<int>();
  o.group_size = job.params["group_size"].get<int>();
  return quantize_kmeans(job.w.as<float>(), job.w.dim(0), job.w.dim(1), o, job.stats->sq_norm.data(),
                         job.cancel, job.name);
}

LayerCost kmeans_cost(const nlohmann::json& p, const CostShape& s) {
  const double n = s.rows * s.cols, centroids = std::ldexp(1.0, algo::param(p, "bits", 4));
  return {std::ceil(n * algo::param(p, "bits", 4) / 8) + 4 * s.rows * centroids,
          n + 8 * s.cols + 4 * s.rows * 256, algo::param(p, "iterations", 25) * n * centroids * 3};
}

}  // namespace

CompressAlgorithm kmeans_algorithm() {
  using namespace algo;
  return {.name = "kmeans",
          .kind = "quantize",
          .help = "k-means codebook per output channel or group, Hessian-weighted",
          .params = {bits({2, 3, 4}, 3), integer("iterations", 25, 1, 1000, "Lloyd iterations"),
                     {"group_size", "int", 0, {0, 32, 64, 128}, 0, 0,
                      "columns per codebook: 32/64/128, 0 = one codebook per output channel"}},
          .needs = needs_norms,
          .compress_layer = kmeans_stage_layer,
          .cost = kmeans_cost};
}

}  // namespace mcw
