// Building and checking LayerStats (engine/compress/layer_stats.h) from activation rows.
#pragma once
#include <cstdint>
#include <string>

#include "engine/compress/layer_stats.h"

namespace mcw {

// Empty statistics for a layer with `cols` input channels (xtx, sq_norm, max_abs zeroed);
// without `gram`, xtx stays empty and accumulate() skips it (the methods that read only
// input norms: Wanda, k-means; XᵀX costs as much as GPTQ's own work).
LayerStats make_layer_stats(int64_t cols, bool gram = true);

// Adds the n rows of X [n, stats.cols] (row-major) to the statistics. XᵀX is formed in f32
// GEMM chunks of 256 rows and summed in f64 (accumulate_gram), so rounding does not grow
// with the number of calibration tokens. Throws mcw::Error when the statistics are
// malformed.
void accumulate(LayerStats& stats, const float* X, int64_t n);

// Throws mcw::Error (naming `what`) unless the statistics belong to a layer with `cols`
// inputs: consistent vector sizes and finite values, and XᵀX when `need_gram`. Every method
// reading stats calls it.
void check_layer_stats(const LayerStats& stats, int64_t cols, const std::string& what,
                       bool need_gram = true);

}  // namespace mcw
