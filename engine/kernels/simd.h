// The one place that includes the x86 intrinsics, for kernel files only. GCC 12's AVX-512
// headers build some intrinsics (reductions, extracts, shuffles) on an "undefined" vector
// that trips -W(maybe-)uninitialized after inlining (GCC bug 105593). The warning fires
// late, at the inlined site, so a push/pop around the include cannot catch it: the
// including translation unit gives up these two warnings, which is why only SIMD kernel
// files may include this header.
#pragma once
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
