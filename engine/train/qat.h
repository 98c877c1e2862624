// Quantisation-aware training for the group-wise affine quantisers (LSQ, Esser et al.
// 2020): the model runs fake-quantised weights ŵ = s·(clamp(round(w/s) + z, 0, 2^b − 1) − z)
// per group, and training updates the latent f32 weights w through the straight-through
// estimator (the gradient passes where w is inside the grid's range, stops where clamped)
// and the group scales s by LSQ's gradient, ∂ŵ/∂s = round(w/s) − w/s inside the range and
// the clamped code's (q − z) outside, scaled by LSQ's 1/√(n·(2^b − 1)) for a group of n
// weights. Zero points stay the integers the grid started with by default (an integer zero
// is what GPTQ-style checkpoints store); with learn_zeros they are learnt as LSQ+ learns
// its offset: continuous, the code round(w/s + z) clamped, ŵ = s·(q − z), so ∂ŵ/∂z is 0
// inside the range (straight through the rounding) and −s where clamped, with LSQ's
// gradient scale; the layout stores them in f16 as it stores scales (an export that needs
// integer zeros then keeps such a layer dense). A sparsity mask stays (pruned weights stay zero). The forward pass rounds each learnt scale
// to f16 as the layout stores it (the latent scale stays f32), so that after training the
// latent weights coded on the learnt grid in the layer's own layout (qat_pack) decode to
// exactly the weights training measured.
//
// EfficientQAT's rule (Chen et al. 2024, quantize/quantizer.py of OpenGVLab/EfficientQAT), for
// its block-wise training (block_ap.h): the same straight-through gradients without LSQ's
// gradient scale, and the zero points always learnt but used rounded (an integer zero, as
// its checkpoints store): ŵ = s·(clamp(round(w/s) + round(z), 0, 2^b − 1) − round(z)), with
// the rounding of z passed straight through, so ∂ŵ/∂z is 0 inside the range and −s where
// clamped.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/tensor.h"

namespace mcw {

enum class QatRule { Lsq, EfficientQat };

struct QatLayer {
  CompressedTensor scheme;           // the layout (bits, groups, symmetry, mask); codes ignored
  QatRule rule = QatRule::Lsq;
  Tensor latent;                     // f32 [out, in]: the weights training updates
  std::vector<float> scales;  // [rows · groups]: the learnt steps
  // [rows · groups]: learnt zero points (learn_zeros); empty: the scheme's, fixed.
  std::vector<float> zeros;
};

// A layer to train from `compressed` (Affine; its scales and zeros start the grid) with
// latent weights `start` (the uncompressed weight, or the compressed one). Throws
// mcw::Error naming the layer for other codings, act-order group indices, AWQ input scales
// and outliers. learn_zeros: the zero points are trained too (an asymmetric layer's; a
// symmetric layer's implied zero stays).
// With QatRule::EfficientQat an asymmetric layer's zeros are always learnt (learn_zeros is
// ignored).
QatLayer qat_layer(const CompressedTensor& compressed, const Tensor& start,
                   bool learn_zeros = false, QatRule rule = QatRule::Lsq);

// ŵ into `out` (f32 [out, in]).
void qat_fake_quantize(const QatLayer& layer, Tensor& out);

// From dL/dŵ: adds the straight-through gradient into dlatent ([out, in]), LSQ's scale
// gradient into dscales ([rows · groups]) and, for learnt zeros, theirs into dzeros.
void qat_gradients(const QatLayer& layer, const Tensor& dfake, Tensor& dlatent,
                   std::span<float> dscales, std::span<float> dzeros = {});

// The trained layer in its layout: scales (and learnt zeros) rounded to f16 (as every
// quantiser here stores them) and the latent weights coded on that grid: it decodes to
// qat_fake_quantize's ŵ.
CompressedTensor qat_pack(const QatLayer& layer);

}  // namespace mcw
