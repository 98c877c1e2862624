#include "engine/eval/model_diff.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <limits>
#include <mutex>
#include <unordered_map>

namespace mcw {

const char* tensor_diff_kind_name(TensorDiffKind k) {
  switch (k) {
    case TensorDiffKind::Compared:
      return "compared";
    case TensorDiffKind::ShapeMismatch:
      return "shape";
    case TensorDiffKind::OnlyInA:
      return "only-a";
    case TensorDiffKind::OnlyInB:
      return "only-b";
  }
  return "?";
}

void DiffSums::join(const DiffSums& o) {
  count += o.count;
  changed += o.changed;
  zeros_a += o.zeros_a;
  zeros_b += o.zeros_b;
  nonfinite += o.nonfinite;
  sum_aa += o.sum_aa;
  sum_bb += o.sum_bb;
  sum_ab += o.sum_ab;
  sum_dd += o.sum_dd;
  max_abs = std::max(max_abs, o.max_abs);
}

// Pairs with NaN or ±Inf: each value checked on its own (the rare path).
static DiffSums diff_chunk_careful(const float* a, const float* b, size_t n) {
  DiffSums s;
  s.count = n;
  for (size_t i = 0; i < n; ++i) {
    const float x = a[i], y = b[i];
    s.zeros_a += x == 0.0f;
    s.zeros_b += y == 0.0f;
    if (!std::isfinite(x) || !std::isfinite(y)) {
      ++s.nonfinite;
      s.changed += !(x == y || (std::isnan(x) && std::isnan(y)));
      continue;
    }
    s.changed += x != y;
    const double dx = x, dy = y, d = dx - dy;
    s.sum_aa += dx * dx;
    s.sum_bb += dy * dy;
    s.sum_ab += dx * dy;
    s.sum_dd += d * d;
    s.max_abs = std::max(s.max_abs, std::fabs(d));
  }
  return s;
}

DiffSums diff_chunk_f32(const float* a, const float* b, size_t n) {
  // The common case without a branch per value: four lanes of partial sums held in
  // registers (a fixed summation order, so results are reproducible). A NaN or Inf
  // anywhere makes Σa² or Σb² non-finite (finite floats squared in double cannot
  // overflow), and then the chunk is redone value by value.
  double aa[4] = {}, bb[4] = {}, ab[4] = {}, dd[4] = {}, mx[4] = {};
  uint64_t changed = 0, za = 0, zb = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t l = 0; l < 4; ++l) {
      const float x = a[i + l], y = b[i + l];
      const double dx = x, dy = y, d = dx - dy;
      aa[l] += dx * dx;
      bb[l] += dy * dy;
      ab[l] += dx * dy;
      dd[l] += d * d;
      mx[l] = std::max(mx[l], std::fabs(d));
      changed += x != y;
      za += x == 0.0f;
      zb += y == 0.0f;
    }
  }
  for (; i < n; ++i) {
    const float x = a[i], y = b[i];
    const double dx = x, dy = y, d = dx - dy;
    aa[0] += dx * dx;
    bb[0] += dy * dy;
    ab[0] += dx * dy;
    dd[0] += d * d;
    mx[0] = std::max(mx[0], std::fabs(d));
    changed += x != y;
    za += x == 0.0f;
    zb += y == 0.0f;
  }
  DiffSums s;
  s.count = n;
  s.sum_aa = (aa[0] + aa[1]) + (aa[2] + aa[3]);
  s.sum_bb = (bb[0] + bb[1]) + (bb[2] + bb[3]);
  if (!std::isfinite(s.sum_aa) || !std::isfinite(s.sum_bb)) return diff_chunk_careful(a, b, n);
  s.sum_ab = (ab[0] + ab[1]) + (ab[2] + ab[3]);
  s.sum_dd = (dd[0] + dd[1]) + (dd[2] + dd[3]);
  s.max_abs = std::max(std::max(mx[0], mx[1]), std::max(mx[2], mx[3]));
  s.changed = changed;
  s.zeros_a = za;
  s.zeros_b = zb;
  return s;
}

bool TensorDiff::differs() const {
  if (kind != TensorDiffKind::Compared) return true;
  return dtype_a != dtype_b || sums.changed > 0;
}

ModelDiff::Summary ModelDiff::summary() const {
  Summary s;
  s.tensors = rows.size();
  for (const TensorDiff& r : rows) {
    s.bytes_a += r.bytes_a;
    s.bytes_b += r.bytes_b;
    s.differing += r.differs();
    switch (r.kind) {
      case TensorDiffKind::Compared:
        ++s.compared;
        s.value_changed += r.sums.changed > 0;
        break;
      case TensorDiffKind::ShapeMismatch:
        ++s.shape_mismatch;
        break;
      case TensorDiffKind::OnlyInA:
        ++s.only_in_a;
        break;
      case TensorDiffKind::OnlyInB:
        ++s.only_in_b;
        break;
    }
    if (r.in_a() && r.in_b()) s.dtype_changed += r.dtype_a != r.dtype_b;
  }
  return s;
}

void finish_tensor_diff(TensorDiff& r) {
  const DiffSums& s = r.sums;
  const double na = std::sqrt(s.sum_aa), nb = std::sqrt(s.sum_bb), nd = std::sqrt(s.sum_dd);
  if (na > 0)
    r.rel_l2 = nd / na;
  else
    r.rel_l2 = nd > 0 ? std::numeric_limits<double>::infinity() : 0.0;
  if (na > 0 && nb > 0)
    // sqrt(x*x) == x exactly in IEEE arithmetic: identical tensors get a cosine of 1.
    r.cosine = std::clamp(s.sum_ab / std::sqrt(s.sum_aa * s.sum_bb), -1.0, 1.0);
  else
    r.cosine = (na == 0 && nb == 0) ? 1.0 : 0.0;
  r.max_abs = s.max_abs;
  const double n = double(s.count);
  r.changed_fraction = s.count ? double(s.changed) / n : 0.0;
  r.sparsity_a = s.count ? double(s.zeros_a) / n : 0.0;
  r.sparsity_b = s.count ? double(s.zeros_b) / n : 0.0;
}

// 64 Ki values (a multiple of every block size): two f32 buffers of 256 KiB per worker.
static constexpr size_t kChunk = size_t(1) << 16;

static DiffSums diff_tensor_values(const Tensor& a, const Tensor& b, const CancelToken* cancel) {
  const size_t n = size_t(a.numel());
  const size_t chunks = (n + kChunk - 1) / kChunk;
  const bool a_direct = a.dtype() == DType::F32, b_direct = b.dtype() == DType::F32;
  return tbb::parallel_deterministic_reduce(
      tbb::blocked_range<size_t>(0, chunks, 1), DiffSums{},
      [&](const tbb::blocked_range<size_t>& r, DiffSums acc) {
        std::vector<float> buf_a(a_direct ? 0 : kChunk), buf_b(b_direct ? 0 : kChunk);
        for (size_t c = r.begin(); c != r.end(); ++c) {
          if (cancel) cancel->throw_if_cancelled();
          const size_t first = c * kChunk, len = std::min(kChunk, n - first);
          const float* x = a_direct ? a.as<float>() + first : buf_a.data();
          const float* y = b_direct ? b.as<float>() + first : buf_b.data();
          if (!a_direct) a.to_f32(buf_a.data(), first, len);
          if (!b_direct) b.to_f32(buf_b.data(), first, len);
          acc.join(diff_chunk_f32(x, y, len));
        }
        return acc;
      },
      [](DiffSums x, const DiffSums& y) {
        x.join(y);
        return x;
      });
}

static TensorDiff row_for(const Tensor* a, const Tensor* b) {
  TensorDiff r;
  r.name = a ? a->name() : b->name();
  if (a) r.shape_a = a->shape(), r.dtype_a = a->dtype(), r.bytes_a = a->nbytes();
  if (b) r.shape_b = b->shape(), r.dtype_b = b->dtype(), r.bytes_b = b->nbytes();
  if (!b)
    r.kind = TensorDiffKind::OnlyInA;
  else if (!a)
    r.kind = TensorDiffKind::OnlyInB;
  else if (a->shape() != b->shape())
    r.kind = TensorDiffKind::ShapeMismatch;
  else
    r.kind = TensorDiffKind::Compared;
  return r;
}

ModelDiff diff_models(const ModelFile& a, const ModelFile& b, const ProgressFn& progress,
                      const CancelToken* cancel) {
  ModelDiff out;
  out.path_a = a.path;
  out.path_b = b.path;

  // Names may repeat in a (hostile) file: the k-th tensor of a name in A meets the k-th of
  // that name in B, and any left over in B is reported as B's own.
  std::unordered_map<std::string, std::deque<size_t>> in_b;
  for (size_t i = 0; i < b.tensors.size(); ++i) in_b[b.tensors[i].name()].push_back(i);
  std::vector<bool> b_matched(b.tensors.size(), false);
  struct Pair {
    const Tensor* a;
    const Tensor* b;
  };
  std::vector<Pair> pairs;
  for (const Tensor& t : a.tensors) {
    const Tensor* match = nullptr;
    if (auto it = in_b.find(t.name()); it != in_b.end() && !it->second.empty()) {
      match = &b.tensors[it->second.front()];
      b_matched[it->second.front()] = true;
      it->second.pop_front();
    }
    pairs.push_back({&t, match});
  }
  for (size_t i = 0; i < b.tensors.size(); ++i)
    if (!b_matched[i]) pairs.push_back({nullptr, &b.tensors[i]});

  out.rows.reserve(pairs.size());
  uint64_t total = 0;
  for (const Pair& p : pairs) {
    out.rows.push_back(row_for(p.a, p.b));
    if (out.rows.back().kind == TensorDiffKind::Compared) total += uint64_t(p.a->numel());
  }

  std::atomic<uint64_t> done{0};
  std::mutex progress_mutex;  // callers get one event at a time, fractions never going back
  uint64_t reported = 0;
  tbb::parallel_for(size_t(0), pairs.size(), [&](size_t i) {
    TensorDiff& r = out.rows[i];
    if (r.kind != TensorDiffKind::Compared) return;
    if (cancel) cancel->throw_if_cancelled();
    r.sums = diff_tensor_values(*pairs[i].a, *pairs[i].b, cancel);
    finish_tensor_diff(r);
    const uint64_t now = done.fetch_add(r.sums.count) + r.sums.count;
    if (progress) {
      std::lock_guard lock(progress_mutex);
      reported = std::max(reported, now);
      report(progress, "diff", r.name, total ? double(reported) / double(total) : 1.0);
    }
  });
  if (cancel) cancel->throw_if_cancelled();
  report(progress, "diff", "", 1.0, "done");
  return out;
}

}  // namespace mcw
