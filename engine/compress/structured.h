// Importance of whole input channels of a linear layer, for structured pruning in the manner
// of FLAP (An et al., 2024): a channel of o_proj's input (a slice of one attention head) or
// of down_proj's input (one MLP intermediate channel) matters as much as its output varies
// over the calibration tokens. Removing channel j leaves the error W[:, j]·(x_j − mean_j);
// its average size is var(x_j)·‖W[:, j]‖² (the fluctuation metric), and the constant part
// W[:, j]·mean_j goes into an output bias (bias compensation).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace mcw {

// Per-channel mean and spread of activation rows, merged batch by batch in f64 (Chan et
// al.'s pairwise update), so that the variance does not suffer from cancellation.
class ChannelMoments {
 public:
  explicit ChannelMoments(int64_t cols = 0) : mean_(size_t(cols)), m2_(size_t(cols)) {}
  void add(const float* x, int64_t rows);  // rows of cols() values, row-major
  int64_t cols() const { return int64_t(mean_.size()); }
  int64_t count() const { return n_; }
  double mean(int64_t j) const { return mean_[size_t(j)]; }
  double variance(int64_t j) const;     // sample variance, divided by count − 1
  double mean_square(int64_t j) const;  // mean of x_j²

 private:
  int64_t n_ = 0;
  std::vector<double> mean_, m2_;  // m2: Σ (x − mean)²
};

enum class StructuredScore {
  Flap,   // var(x_j) · ‖W[:, j]‖²  (FLAP's WIFV: fluctuation of the channel's contribution)
  Wanda,  // mean_r |W[r, j]| · rms(x_j)  (FLAP's wanda-sp baseline: |W|·‖X‖ averaged over rows)
};
// "flap" or "wanda"; throws mcw::Error otherwise.
StructuredScore structured_score(const std::string& name);

// One score per input channel of W [rows, cols] (cols == m.cols(); any stored dtype).
std::vector<double> channel_importance(const Tensor& w, const ChannelMoments& m, StructuredScore s);
// Scores of units of `width` consecutive channels (a head: head_dim channels): their sums,
// or the sums of their squares (FLAP's code squares o_proj's channel scores first).
std::vector<double> unit_importance(const std::vector<double>& channel, int64_t width,
                                    bool squares = false);
// The `count` units with the lowest score, in ascending index order (ties: lower index).
std::vector<int64_t> least_important(const std::vector<double>& score, int64_t count);
// Channel indices covered by `units` of `width` channels each, ascending.
std::vector<int64_t> unit_channels(const std::vector<int64_t>& units, int64_t width);

// The masked form of removing input channels: zeroes columns `channels` of W [rows, cols]
// and, when `bias` is not null, adds W[:, j]·mean_j to it (an empty bias becomes zeros of
// length rows first). The masked layer computes what the sliced smaller layer computes.
void mask_input_channels(Tensor& w, Tensor* bias, const std::vector<int64_t>& channels,
                         const ChannelMoments& m);

// ‖W[rows]‖² / ‖W‖² for the listed rows (units of `width`) of an f32 W [n, cols]: the
// weight-side error of a projection that loses those outputs.
double removed_rows_share(const Tensor& w, const std::vector<int64_t>& units, int64_t width);

// Diagonal estimate of the output error left by removing `channels` with compensation,
// relative to the output: Σ_removed var_j‖W_j‖² / Σ_all E[x_j²]‖W_j‖².
double removal_relative_error(const Tensor& w, const std::vector<int64_t>& channels,
                              const ChannelMoments& m);

}  // namespace mcw
