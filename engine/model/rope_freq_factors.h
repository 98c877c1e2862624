// Llama 3.x rope scaling as GGUF carries it. llama.cpp's converter does not write the
// scaling's parameters: it writes `rope_freqs.weight`, one f32 divisor per frequency
// (1 for short wavelengths, `factor` for long ones, 1 / ((1 − s)/factor + s) between),
// and llama.cpp divides each rotary frequency by it. MCW keeps one representation,
// RopeScaling, and converts at the file boundary in both directions.
#pragma once
#include <string>
#include <vector>

#include "engine/model/llama_config.h"

namespace mcw {

// Llama 3's divisor of a frequency whose wavelength is `wavelen` positions (the one rule:
// rope_inv_freq divides by it, the GGUF export writes it).
double llama3_rope_divisor(const RopeScaling& s, double wavelen);

// The divisors convert_hf_to_gguf.py writes for c.rope_scaling (head_dim / 2 of them).
std::vector<float> llama3_rope_factors(const LlamaConfig& c);

// RopeScaling whose divisors are `factors` (within f32 rounding), for c's rope theta and
// head dimension. Only the ratios original_max_position / low (high) _freq_factor show in
// the divisors, so original_max_position is set to Llama 3's 8192 and the two factors
// fitted to it. Disabled when every divisor is 1. Throws mcw::Error(file) for divisors
// that are not positive and finite, the wrong count, or not of Llama 3's form.
RopeScaling llama3_scaling_from_factors(const std::vector<float>& factors, const LlamaConfig& c,
                                        const std::string& file);

}  // namespace mcw
