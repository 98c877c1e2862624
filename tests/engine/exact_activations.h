// For tests of the exact (f32-activation) paths: int8 activations off for the guard's
// lifetime (stored_matmul.h's process-wide switch; on again after, as it is by default).
#pragma once
#include "engine/kernels/stored_matmul.h"

namespace mcw::test {

struct ExactActivations {
  ExactActivations() { set_int8_activations(false); }
  ~ExactActivations() { set_int8_activations(true); }
};

}  // namespace mcw::test
