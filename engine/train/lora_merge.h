// A recovered linear folded back into the form it was compressed to: the merged weight
// W + s·B·A re-coded on the layer's own grid — each weight rounded to the nearest value its
// group's scale and zero point (or codebook) give, those kept as they were, the sparsity
// mask kept (pruned weights stay zero), outliers kept at their positions, an AWQ input
// scale applied as before — so that the recovered model deploys in the same layout, with
// the same scales and size, as the compressed one. Updates finer than a grid step round
// back, which the added error (the re-coding's error relative to the adapter's own update)
// shows; keeping the adapter apart (PEFT) avoids it.
#pragma once
#include <string>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/tensor.h"

namespace mcw {

struct RecodedLayer {
  CompressedTensor tensor;
  // ‖Ŵ′ − W′‖² / ‖W′ − W‖² with W the frozen weight, W′ the merged one and Ŵ′ its re-coding:
  // 0 keeps the whole update, 1 loses as much as the update itself.
  double added_error = 0;
};

// `compressed`: the layer as it was packed; `frozen`: what it decodes to (f32 [out, in]);
// `merged`: W + s·B·A. Throws mcw::Error naming the layer for low-rank factors, which
// have no grid to round to.
RecodedLayer recode_merged(const CompressedTensor& compressed, const Tensor& frozen,
                           const Tensor& merged);

}  // namespace mcw
