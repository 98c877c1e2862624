// Weight clustering (in the manner of SqueezeLLM): each row, or each group of columns in a
// row, gets its own codebook of 2^bits values found by weighted 1-D k-means, where weight
// c's importance is col_weight[c] (diag XᵀX, a Hessian-diagonal / Fisher proxy for how
// much its error costs at the layer output). Deterministic: quantile initialisation, or
// k-means++ from a fixed seed, then Lloyd iterations until assignments stop changing.
// Codebook entries are stored as f16; after rounding them each weight takes the nearest.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/progress.h"

namespace mcw {

enum class KmeansInit { Quantile, PlusPlus };

struct KmeansOptions {
  int bits = 4;            // 1..8: 2^bits centroids
  int64_t group_size = 0;  // 0: one codebook per row; else must divide cols
  int iterations = 30;     // Lloyd iterations at most
  KmeansInit init = KmeansInit::Quantile;
  uint32_t seed = 0;  // k-means++ only
};

struct Kmeans1d {
  std::vector<float> centroids;  // k, ascending
  std::vector<uint8_t> assign;   // n, index into centroids
  double objective = 0;          // Σ weight·(x − centroid)²
  int iterations = 0;            // Lloyd iterations run
};

// Weighted k-means of n values into k <= 256 clusters. weight may be null (all 1); if all
// weights are 0 they count as 1. history, when given, receives the objective after each
// Lloyd iteration (non-increasing). Empty clusters keep their centroid.
Kmeans1d weighted_kmeans_1d(const float* x, const double* weight, int64_t n, int k, int iterations,
                            KmeansInit init, uint32_t seed = 0,
                            std::vector<double>* history = nullptr);

CompressedTensor quantize_kmeans(const float* w, int64_t rows, int64_t cols,
                                 const KmeansOptions& opt, const double* col_weight = nullptr,
                                 const CancelToken* cancel = nullptr, std::string name = {});

}  // namespace mcw
