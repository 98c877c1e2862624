#include "engine/model/rope_freq_factors.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/core/error.h"

namespace mcw {
namespace {

// Wavelength (in positions) of rotary frequency i.
double wavelength(const LlamaConfig& c, int64_t i) {
  return 2 * std::numbers::pi * std::pow(c.rope_theta, double(2 * i) / double(c.head_dim));
}

bool reproduces(const RopeScaling& s, const std::vector<float>& factors, const LlamaConfig& c) {
  for (size_t i = 0; i < factors.size(); ++i)
    if (std::fabs(llama3_rope_divisor(s, wavelength(c, int64_t(i))) - factors[i]) >
        1e-5 * factors[i])
      return false;
  return true;
}

// v rounded to 4 decimals when that is within f32 noise (config.json shows 1, not 0.9999999).
double tidy(double v) {
  const double r = std::round(v * 1e4) / 1e4;
  return std::fabs(r - v) <= 1e-6 * std::fabs(v) ? r : v;
}

}  // namespace

double llama3_rope_divisor(const RopeScaling& s, double wavelen) {
  const double lo_wl = s.original_max_position / s.low_freq_factor;
  const double hi_wl = s.original_max_position / s.high_freq_factor;
  if (wavelen < hi_wl) return 1;
  if (wavelen > lo_wl) return s.factor;
  const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                        (s.high_freq_factor - s.low_freq_factor);
  return 1 / ((1 - smooth) / s.factor + smooth);
}

std::vector<float> llama3_rope_factors(const LlamaConfig& c) {
  std::vector<float> f(size_t(c.head_dim / 2));
  for (size_t i = 0; i < f.size(); ++i)
    f[i] = float(llama3_rope_divisor(c.rope_scaling, wavelength(c, int64_t(i))));
  return f;
}

RopeScaling llama3_scaling_from_factors(const std::vector<float>& factors, const LlamaConfig& c,
                                        const std::string& file) {
  auto fail = [&](const std::string& why) -> RopeScaling {
    throw Error(file, "rope_freqs.weight: " + why);
  };
  if (int64_t(factors.size()) != c.head_dim / 2)
    fail(std::to_string(factors.size()) + " values for head dimension " +
         std::to_string(c.head_dim));
  for (float f : factors)
    if (!std::isfinite(f) || !(f > 0)) fail("a divisor that is not positive and finite");
  RopeScaling s;
  s.factor = *std::max_element(factors.begin(), factors.end());
  if (s.factor == 1 && std::all_of(factors.begin(), factors.end(), [](float f) { return f == 1; }))
    return s;  // no scaling
  s.enabled = true;
  s.original_max_position = 8192;
  // Between the two wavelength bounds 1/divisor is linear in 1/wavelength:
  //   s(λ) = (1/f − 1/F) / (1 − 1/F) = (orig/λ − low) / (high − low).
  // A least-squares line through those points gives high − low and low.
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  int64_t last_high = -1, first_low = int64_t(factors.size());
  for (size_t i = 0; i < factors.size(); ++i) {
    const double f = factors[i];
    if (std::fabs(f - 1) <= 1e-6) {
      last_high = int64_t(i);
    } else if (std::fabs(f - s.factor) <= 1e-6 * s.factor) {
      first_low = std::min(first_low, int64_t(i));
    } else {
      const double x = 1 / wavelength(c, int64_t(i)),
                   y = (1 / f - 1 / s.factor) / (1 - 1 / s.factor);
      n += 1, sx += x, sy += y, sxx += x * x, sxy += x * y;
    }
  }
  if (n >= 2 && sxx * n - sx * sx > 0) {
    const double a = (n * sxy - sx * sy) / (n * sxx - sx * sx), b = (sy - a * sx) / n;
    if (!(a > 0)) fail("divisors that are not Llama 3's rope scaling");
    s.low_freq_factor = tidy(-b * s.original_max_position / a);
    s.high_freq_factor = tidy(s.low_freq_factor + s.original_max_position / a);
  } else if (last_high >= 0 && first_low < int64_t(factors.size())) {
    // No slope to fit: put the bounds between the neighbouring wavelengths (the divisors
    // then come out the same; checked below).
    const double hi_wl = std::sqrt(wavelength(c, last_high) * wavelength(c, last_high + 1));
    const double lo_wl = std::sqrt(wavelength(c, first_low - 1) * wavelength(c, first_low));
    s.high_freq_factor = s.original_max_position / hi_wl;
    s.low_freq_factor = s.original_max_position / std::max(lo_wl, hi_wl * (1 + 1e-9));
  }
  if (!(s.high_freq_factor > s.low_freq_factor && s.low_freq_factor > 0) ||
      !reproduces(s, factors, c))
    fail("divisors that are not Llama 3's rope scaling (MCW reads that form only)");
  return s;
}

}  // namespace mcw
