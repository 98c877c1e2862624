// Structured pruning of whole input channels by the Optimal Brain Surgeon (as ZipLM,
// Kurtic, Frantar & Alistarh 2023, removes structures, and OBC's group form): a channel is
// a set S of b consecutive columns of W [rows, cols] (b = 1 for a linear layer, kh·kw for
// a convolution's im2col columns), and with H = XᵀX (dampened) and H⁻¹ its inverse,
// - removing S costs ρ_S = Σ_rows w_S (H⁻¹_SS)⁻¹ w_Sᵀ, the least increase of ‖WX − ŴX‖²
//   any update of the other columns can reach;
// - greedily, the channel with the least ρ goes, the others absorb it with
//   W ← W − W_S (H⁻¹_SS)⁻¹ H⁻¹_S,: and H⁻¹ ← H⁻¹ − H⁻¹_:,S (H⁻¹_SS)⁻¹ H⁻¹_S,: (the inverse
//   Hessian of the columns left), until round(sparsity · channels) are gone.
// With compensate = false the channels are chosen by the same scores taken once, on the
// original weights, and simply zeroed: the ablation that shows what the update is worth.
// The result is a Dense tensor whose removed columns are zero, masked (the next layer's
// producer can then drop those channels; MCW keeps the shape).
#pragma once
#include <cstdint>
#include <string>

#include "engine/compress/compressed_tensor.h"
#include "engine/compress/layer_stats.h"
#include "engine/core/progress.h"

namespace mcw {

struct ChannelObsOptions {
  double sparsity = 0.25;       // share of the input channels removed
  int64_t channel_columns = 1;  // b: columns per channel, dividing cols
  double percdamp = 0.01;       // H += percdamp · mean(diag H) · I
  bool compensate = true;
};

struct ChannelObsReport {
  int64_t channels = 0, removed = 0;
  double loss = 0;  // Σ ρ of the removed channels (½ of it is OBS's loss)
};

CompressedTensor prune_channels_obs(const float* w, int64_t rows, int64_t cols,
                                    const LayerStats& stats, const ChannelObsOptions& opt,
                                    const CancelToken* cancel = nullptr, std::string name = {},
                                    ChannelObsReport* report = nullptr);

}  // namespace mcw
