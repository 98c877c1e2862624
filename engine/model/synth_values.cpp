// The values of a synthetic model. Every element is a pure function of (seed, tensor name,
// index): a counter-based generator (splitmix64's mixer over a per-tensor key plus the
// index) feeds Box-Muller, so threads can fill any ranges in any order.
//
// Scales, chosen so that a forward pass gives finite logits of about unit spread, as a
// trained model's do:
//  - linear weights N(0, 1/fan_in): a unit-RMS input gives unit-RMS outputs, so attention
//    scores and MLP activations stay O(1) through the layers (trained Llama-3-8B q/k
//    weights have std ~0.015 ≈ 1/√4096);
//  - embeddings N(0, 0.02²), the usual initializer_range; tied heads then give logits of
//    std ≈ 0.02·√D (0.9 at D = 2048);
//  - norm gains 1 + N(0, 0.05²); q/k/v biases N(0, 0.1²).
// Outlier features (LLM.int8(), Dettmers et al. 2022): a few fixed hidden dimensions whose
// values at every linear layer's input are `outlier_scale` times the rest. The factor is
// split as real models show it: √scale in the residual stream itself (larger embedding
// columns, and larger o_proj/down_proj rows so that every block keeps writing into those
// dimensions) and √scale in the RMSNorm gains of input_layernorm and
// post_attention_layernorm, which amplify them further (as Outlier Suppression, Wei et al.
// 2022, finds of LayerNorm gains). The final norm is left plain. The columns of q/k/v and
// gate/up that read the planted channels are √scale smaller, so that those channels add to
// the outputs like a few ordinary ones instead of swamping them: without that, at the 1B
// shape with scale 50, 558 of 2048 o_proj inputs and 8118 of 8192 down_proj inputs reached
// |x| >= 6 (attention and MLP outputs several times too large), which trained models do
// not show; with it, the outliers stay at the inputs they were planted in.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "engine/core/half.h"
#include "engine/model/synth_model.h"

namespace mcw {

namespace {

uint64_t tensor_key(uint64_t seed, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the name
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
  return synth_mix64(synth_mix64(seed) ^ h);
}

// Standard normals for elements [begin, begin + n): element i uses pair i/2's hash, the
// cosine for even i and the sine for odd i. 24-bit uniforms truncate the tails at 5.8σ.
void normals(uint64_t key, int64_t begin, int64_t n, float* z) {
  constexpr float kInv24 = 1.0f / 16777216.0f;
  const int64_t end = begin + n;
  for (int64_t p = begin / 2; 2 * p < end; ++p) {
    const uint64_t h = synth_mix64(key + uint64_t(p + 1) * 0x9e3779b97f4a7c15ull);
    const float u1 = float((h >> 40) + 1) * kInv24;  // (0, 1]
    const float u2 = float(h & 0xffffff) * kInv24;
    const float r = std::sqrt(-2.0f * std::log(u1));
    const float a = 2.0f * std::numbers::pi_v<float> * u2;
    const int64_t i0 = 2 * p, i1 = 2 * p + 1;
    if (i0 >= begin) z[i0 - begin] = r * std::cos(a);
    if (i1 < end) z[i1 - begin] = r * std::sin(a);
  }
}

}  // namespace

void synth_values(const SynthPlan& plan, size_t t, int64_t begin, int64_t n, uint16_t* out) {
  const SynthTensor& T = plan.tensors[t];
  const int64_t cols = T.shape.back();
  const float root = float(std::sqrt(plan.options.outlier_scale));
  // outlier[c] = root for planted hidden dimensions, else 1.
  std::vector<float> outlier(size_t(plan.cfg.dim), 1.0f);
  std::vector<float> inv_outlier(size_t(plan.cfg.dim), 1.0f);
  for (int64_t c : plan.outlier_channels)
    outlier[size_t(c)] = root, inv_outlier[size_t(c)] = 1 / root;

  constexpr int64_t kBlock = 4096;  // stays in L1 between the two passes
  float z[kBlock];
  const uint64_t key = tensor_key(plan.options.seed, T.name);
  const bool conv1d =
      T.init == SynthInit::NormedReaderConv1D || T.init == SynthInit::ResidualWriterConv1D;
  const float inv_sqrt_fan_in = 1.0f / std::sqrt(float(conv1d ? T.shape[0] : cols));
  for (int64_t at = begin; at < begin + n; at += kBlock) {
    const int64_t m = std::min(kBlock, begin + n - at);
    normals(key, at, m, z);
    // Row and column walk along with k: a division per element would cost more than the
    // normal itself.
    int64_t row = at / cols, col = at % cols;
    for (int64_t k = 0; k < m; ++k) {
      float v = z[k];
      switch (T.init) {
        case SynthInit::Embedding:
          v *= 0.02f * outlier[size_t(col)];
          break;
        case SynthInit::NormedReader:
          v *= inv_sqrt_fan_in * inv_outlier[size_t(col)];
          break;
        case SynthInit::Linear:
          v *= inv_sqrt_fan_in;
          break;
        case SynthInit::ResidualWriter:
          v *= outlier[size_t(row)] * inv_sqrt_fan_in;
          break;
        case SynthInit::LayerNorm:
          v = (1.0f + 0.05f * v) * outlier[size_t(col)];
          break;
        case SynthInit::FinalNorm:
          v = 1.0f + 0.05f * v;
          break;
        case SynthInit::Bias:
          v *= 0.1f;
          break;
        case SynthInit::NormedReaderConv1D:
          v *= inv_sqrt_fan_in * inv_outlier[size_t(row)];
          break;
        case SynthInit::ResidualWriterConv1D:
          v *= outlier[size_t(col)] * inv_sqrt_fan_in;
          break;
      }
      out[at - begin + k] = f32_to_bf16(v);
      if (++col == cols) col = 0, ++row;
    }
  }
}

}  // namespace mcw
