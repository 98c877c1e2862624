#include "engine/train/lora_merge.h"

#include <cmath>

#include "engine/compress/affine_quantizer.h"
#include "engine/core/error.h"
#include "engine/core/half.h"

namespace mcw {

RecodedLayer recode_merged(const CompressedTensor& c, const Tensor& frozen, const Tensor& merged) {
  const int64_t rows = c.rows, cols = c.cols, n = rows * cols;
  if (merged.dim(0) != rows || merged.dim(1) != cols || frozen.dim(0) != rows ||
      frozen.dim(1) != cols)
    throw Error(c.name, "the merged weight's shape is not the compressed layer's");
  if (c.coding == WeightCoding::LowRank)
    throw Error(c.name,
                "low-rank factors have no grid to re-code a recovered weight on; "
                "keep the adapter apart (--merge none)");

  // The merged values where the mask keeps them, zero elsewhere: the sparsity pattern stays.
  // An AWQ layer codes W·diag(s), so the merged weight is scaled the same way first.
  const std::vector<float> fb = merged.to_f32();  // any dtype
  std::vector<float> w = fb;
  for (int64_t i = 0; i < n; ++i) {
    if (!c.kept(i)) w[size_t(i)] = 0.0f;
    if (!c.input_scale.empty()) w[size_t(i)] *= c.input_scale[size_t(i % cols)];
  }

  RecodedLayer out;
  out.tensor = c;
  if (c.coding == WeightCoding::Dense) {
    out.tensor.dense = Tensor::from_f32(w, {rows, cols}, c.name);
  } else {
    // Each weight re-rounded to the nearest value of its own group's grid (scale and zero
    // point, or codebook, as they were): the layout, the scales and the size stay.
    const int64_t G = c.groups(), levels = int64_t(1) << c.bits;
    std::vector<uint8_t> q(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t col = 0; col < cols; ++col) {
        const size_t g = size_t(r * G + c.group_of(col));
        const float x = w[size_t(r * cols + col)];
        uint8_t best = 0;
        if (c.coding == WeightCoding::Affine) {
          best = affine_code(x, {c.scales[g], c.zero_point(g)}, c.bits);
        } else {
          const float* book = c.codebook.data() + g * size_t(levels);
          for (int64_t k = 1; k < levels; ++k)
            if (std::abs(book[k] - x) < std::abs(book[best] - x)) best = uint8_t(k);
        }
        q[size_t(r * cols + col)] = best;
      }
    out.tensor.codes = pack_codes(q.data(), q.size(), c.bits);
  }
  out.tensor.outlier_value.clear();  // the same weights stay exact, at their new values
  for (uint32_t i : c.outlier_index) out.tensor.outlier_value.push_back(f32_to_f16(w[i]));

  const Tensor q = out.tensor.dequantize();
  const std::vector<float> fa = frozen.to_f32();
  const float* a = fa.data();
  const float* b = fb.data();
  const float* r = q.as<float>();
  double lost = 0, update = 0;
  for (int64_t i = 0; i < n; ++i) {
    lost += double(r[i] - b[i]) * (r[i] - b[i]);
    update += double(b[i] - a[i]) * (b[i] - a[i]);
  }
  out.added_error = update > 0 ? lost / update : 0;
  return out;
}

}  // namespace mcw
