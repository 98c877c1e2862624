// Packs 1–3-bit affine codes in the Affine layout while in scope (tests of the Affine
// kernels themselves; PackedWeight would take the lookup-table layout where it is faster).
#pragma once
#include "engine/kernels/lut_gemv.h"

namespace mcw::test {

struct LutKernelsOff {
  LutKernelsOff() { set_lut_kernels(false); }
  ~LutKernelsOff() { set_lut_kernels(true); }
  LutKernelsOff(const LutKernelsOff&) = delete;
  LutKernelsOff& operator=(const LutKernelsOff&) = delete;
};

}  // namespace mcw::test
