#include "engine/compress/nm_pattern.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "engine/compress/sparsity.h"

namespace mcw {

template <class T>
void select_nm_group(const T* scores, int n, int m, uint8_t* keep) {
  keep_largest(scores, m, m - n, keep);
}

template <class T>
void select_nm(const T* scores, int64_t rows, int64_t cols, int n, int m, uint8_t* keep,
               const CancelToken* cancel) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& rr) {
    if (cancel && cancel->cancelled()) return;
    for (int64_t r = rr.begin(); r < rr.end(); ++r)
      for (int64_t c = 0; c < cols; c += m)
        select_nm_group(scores + r * cols + c, n, m, keep + r * cols + c);
  });
  if (cancel) cancel->throw_if_cancelled();
}

template void select_nm_group<float>(const float*, int, int, uint8_t*);
template void select_nm_group<double>(const double*, int, int, uint8_t*);
template void select_nm<float>(const float*, int64_t, int64_t, int, int, uint8_t*,
                               const CancelToken*);
template void select_nm<double>(const double*, int64_t, int64_t, int, int, uint8_t*,
                                const CancelToken*);

bool mask_satisfies_nm(const std::vector<uint8_t>& mask, int64_t rows, int64_t cols, int n, int m) {
  if (m <= 0 || cols % m != 0 || mask.size() != size_t((rows * cols + 7) / 8)) return false;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols; g += m) {
      int kept = 0;
      for (int64_t c = g; c < g + m; ++c) {
        const int64_t i = r * cols + c;
        kept += (mask[size_t(i >> 3)] >> (i & 7)) & 1;
      }
      if (kept != n) return false;
    }
  return true;
}

}  // namespace mcw
