// Two models compared tensor by tensor: which tensors only one of them has, which changed
// shape or element type, and for tensors of equal shape how far apart their values are
// (relative L2, max |A-B|, cosine, share of changed elements, sparsity of each). Values of
// any dtype are dequantised to f32 in chunks, so a model is never materialised whole.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/progress.h"
#include "engine/core/tensor.h"
#include "engine/io/model_file.h"

namespace mcw {

enum class TensorDiffKind {
  Compared,       // in both, equal shapes: the value statistics below are filled in
  ShapeMismatch,  // in both, different shapes: only names, shapes, dtypes and bytes
  OnlyInA,
  OnlyInB,
};
const char* tensor_diff_kind_name(TensorDiffKind k);  // "compared", "shape", "only-a", "only-b"

// The sums a comparison accumulates (in double), exposed so that tests and callers can
// combine or check them. Pairs where either value is NaN or ±Inf are counted in
// `nonfinite` and left out of the sums, so one bad value does not hide the rest.
struct DiffSums {
  uint64_t count = 0;    // element pairs
  uint64_t changed = 0;  // pairs with a != b (NaN equals NaN here)
  uint64_t zeros_a = 0, zeros_b = 0;
  uint64_t nonfinite = 0;
  double sum_aa = 0, sum_bb = 0, sum_ab = 0, sum_dd = 0;  // Σa², Σb², Σab, Σ(a-b)²
  double max_abs = 0;                                     // max |a-b|
  void join(const DiffSums& o);
};
DiffSums diff_chunk_f32(const float* a, const float* b, size_t n);

struct TensorDiff {
  std::string name;
  TensorDiffKind kind = TensorDiffKind::Compared;
  Shape shape_a, shape_b;                            // empty for the side that lacks the tensor
  DType dtype_a = DType::F32, dtype_b = DType::F32;  // meaningful only where present
  uint64_t bytes_a = 0, bytes_b = 0;
  // Compared rows only:
  DiffSums sums;
  double rel_l2 = 0;   // ‖A-B‖/‖A‖; 0 when both are all zeros, +Inf when only A is
  double max_abs = 0;  // max |A-B|
  double cosine = 1;   // A·B/(‖A‖‖B‖); 1 when both are zero, 0 when only one is
  double changed_fraction = 0;
  double sparsity_a = 0, sparsity_b = 0;  // share of exact zeros

  bool in_a() const { return kind != TensorDiffKind::OnlyInB; }
  bool in_b() const { return kind != TensorDiffKind::OnlyInA; }
  // Anything that differs: values, shape, dtype, or presence.
  bool differs() const;
};

struct ModelDiff {
  std::string path_a, path_b;
  std::vector<TensorDiff> rows;  // A's tensor order, then the tensors only B has in B's order

  struct Summary {
    size_t tensors = 0;  // rows
    size_t compared = 0;
    size_t value_changed = 0;  // compared rows whose values differ
    size_t dtype_changed = 0;  // rows in both with different dtypes
    size_t shape_mismatch = 0, only_in_a = 0, only_in_b = 0;
    size_t differing = 0;  // rows with differs()
    uint64_t bytes_a = 0, bytes_b = 0;
  };
  Summary summary() const;
};

// The statistics of a Compared row from its sums (what diff_models fills in).
void finish_tensor_diff(TensorDiff& row);

// Compares every tensor of `a` with the tensor of the same name in `b`, in parallel over
// tensors and over chunks of large ones. Progress: one event per finished tensor (stage
// "diff", item = its name, fraction = elements done / elements to compare), delivered one
// at a time. Throws mcw::Cancelled when `cancel` fires. Results do not depend on the
// number of threads.
ModelDiff diff_models(const ModelFile& a, const ModelFile& b, const ProgressFn& progress = {},
                      const CancelToken* cancel = nullptr);

}  // namespace mcw
