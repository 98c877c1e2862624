// Column sweeps over a weight's rows (GPTQ, GPTQ on a block grid): body(r0, r1) over
// ranges of [0, rows) in parallel, the body inlined into a build for the widest vectors
// the CPU has. The sweeps' in-block update row[j] -= e·U[k][j] is a third of GPTQ's
// multiply-adds, and the engine's baseline build would run it in SSE.
#pragma once
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cstdint>

#include "engine/kernels/cpu_features.h"

namespace mcw {

#if defined(__x86_64__)
template <typename Body>
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma"))) void rows_avx512(const Body& body,
                                                                                   int64_t r0,
                                                                                   int64_t r1) {
  body(r0, r1);
}
template <typename Body>
__attribute__((target("avx2,fma"))) void rows_avx2(const Body& body, int64_t r0, int64_t r1) {
  body(r0, r1);
}
#endif
template <typename Body>
void parallel_rows(int64_t rows, const Body& body) {
  const SimdLevel level = cpu_features().level;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows),
                    [&](const tbb::blocked_range<int64_t>& rr) {
#if defined(__x86_64__)
                      if (level >= SimdLevel::Avx512)
                        return rows_avx512(body, rr.begin(), rr.end());
                      if (level >= SimdLevel::Avx2) return rows_avx2(body, rr.begin(), rr.end());
#endif
                      body(rr.begin(), rr.end());
                    });
}

}  // namespace mcw
