// Model diff: every statistic checked against a naive double loop over the two files'
// dequantised values (safetensors F32 against GGUF F16 and Q8_0 of the same weights),
// identical files, tensors in one file only, shape and dtype changes, non-finite values,
// thread-count independence, progress, cancellation and a corrupt second file.
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <cmath>
#include <limits>
#include <random>
#include <set>

#include "engine/core/error.h"
#include "engine/eval/model_diff.h"
#include "engine/io/gguf.h"
#include "engine/io/model_file.h"
#include "engine/io/safetensors.h"
#include "temp_files.h"

using namespace mcw;

namespace {

// Random normal values with about `zero_share` of them exactly zero.
Tensor random_f32(const std::string& name, Shape shape, uint32_t seed, double zero_share = 0.1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.5f);
  std::bernoulli_distribution z(zero_share);
  const size_t n = size_t(*checked_numel(shape));
  std::vector<float> v(n);
  for (float& x : v) x = z(rng) ? 0.0f : d(rng);
  return Tensor::from_f32(v, std::move(shape), name);
}

std::vector<Tensor> random_weights() {
  return {random_f32("tok_embd.weight", {40, 64}, 1),
          random_f32("blk.0.attn_q.weight", {64, 64}, 2),
          random_f32("blk.0.ffn_up.weight", {96, 64}, 3),
          // Three full chunks and a partial one: the parallel reduction over chunks.
          random_f32("big.weight", {6200, 32}, 4, 0.3), random_f32("norm.weight", {64}, 5, 0.0)};
}

std::vector<Tensor> as_gguf(const std::vector<Tensor>& ts, DType dtype) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(gguf_tensor_from_f32(t, t.name(), dtype));
  return out;
}

struct Naive {
  uint64_t changed = 0, zeros_a = 0, zeros_b = 0;
  double rel_l2 = 0, max_abs = 0, cosine = 0;
};

// Straight from the definitions, one element at a time, all in double.
Naive naive_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_f32(), y = b.to_f32();
  double aa = 0, bb = 0, ab = 0, dd = 0;
  Naive n;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = double(x[i]) - double(y[i]);
    aa += double(x[i]) * x[i];
    bb += double(y[i]) * y[i];
    ab += double(x[i]) * y[i];
    dd += d * d;
    n.max_abs = std::max(n.max_abs, std::abs(d));
    n.changed += x[i] != y[i];
    n.zeros_a += x[i] == 0;
    n.zeros_b += y[i] == 0;
  }
  n.rel_l2 = std::sqrt(dd) / std::sqrt(aa);
  n.cosine = ab / (std::sqrt(aa) * std::sqrt(bb));
  return n;
}

void expect_matches_naive(const ModelFile& a, const ModelFile& b, const ModelDiff& diff) {
  ASSERT_EQ(diff.rows.size(), a.tensors.size());
  for (size_t i = 0; i < diff.rows.size(); ++i) {
    const TensorDiff& r = diff.rows[i];
    const Tensor& ta = a.tensors[i];
    const Tensor* tb = b.find(ta.name());
    ASSERT_NE(tb, nullptr);
    SCOPED_TRACE(r.name);
    EXPECT_EQ(r.name, ta.name());
    ASSERT_EQ(r.kind, TensorDiffKind::Compared);
    EXPECT_EQ(r.dtype_a, ta.dtype());
    EXPECT_EQ(r.dtype_b, tb->dtype());
    EXPECT_EQ(r.bytes_a, ta.nbytes());
    EXPECT_EQ(r.bytes_b, tb->nbytes());
    const Naive n = naive_diff(ta, *tb);
    const double count = double(ta.numel());
    EXPECT_EQ(r.sums.count, uint64_t(ta.numel()));
    EXPECT_NEAR(r.rel_l2, n.rel_l2, 1e-12 * std::max(1.0, n.rel_l2));
    EXPECT_EQ(r.max_abs, n.max_abs);
    EXPECT_NEAR(r.cosine, n.cosine, 1e-12);
    EXPECT_DOUBLE_EQ(r.changed_fraction, double(n.changed) / count);
    EXPECT_DOUBLE_EQ(r.sparsity_a, double(n.zeros_a) / count);
    EXPECT_DOUBLE_EQ(r.sparsity_b, double(n.zeros_b) / count);
  }
}

TEST(ModelDiff, SafetensorsF32AgainstGgufF16AndQ8_0MatchesNaive) {
  const auto dir = test::fresh_temp_dir();
  const auto weights = random_weights();
  write_safetensors((dir / "a.safetensors").string(), weights);
  write_gguf((dir / "f16.gguf").string(), {}, as_gguf(weights, DType::F16));
  write_gguf((dir / "q8.gguf").string(), {}, as_gguf(weights, DType::Q8_0));
  const ModelFile a = open_model_file((dir / "a.safetensors").string());
  for (const char* other : {"f16.gguf", "q8.gguf"}) {
    SCOPED_TRACE(other);
    const ModelFile b = open_model_file((dir / other).string());
    const ModelDiff diff = diff_models(a, b);
    EXPECT_EQ(diff.path_a, a.path);
    EXPECT_EQ(diff.path_b, b.path);
    expect_matches_naive(a, b, diff);
    // Rounding really happened: every weight matrix differs a little, never a lot.
    for (const TensorDiff& r : diff.rows) {
      EXPECT_GT(r.rel_l2, 0) << r.name;
      EXPECT_LT(r.rel_l2, 0.02) << r.name;
      EXPECT_GT(r.cosine, 0.999) << r.name;
      EXPECT_TRUE(r.differs());
    }
    const auto s = diff.summary();
    EXPECT_EQ(s.compared, weights.size());
    EXPECT_EQ(s.value_changed, weights.size());
    EXPECT_EQ(s.only_in_a + s.only_in_b + s.shape_mismatch, 0u);
  }
  // Q8_0 keeps exact zeros (0/d rounds to 0): the sparsity survives quantisation.
  const ModelDiff q8 = diff_models(a, open_model_file((dir / "q8.gguf").string()));
  EXPECT_NEAR(q8.rows[3].sparsity_a, 0.3, 0.02);
  EXPECT_GE(q8.rows[3].sparsity_b, q8.rows[3].sparsity_a);
}

TEST(ModelDiff, IdenticalModelsHaveNoDifference) {
  const auto dir = test::fresh_temp_dir();
  write_gguf((dir / "m.gguf").string(), {}, as_gguf(random_weights(), DType::Q8_0));
  const ModelFile a = open_model_file((dir / "m.gguf").string());
  const ModelFile b = open_model_file((dir / "m.gguf").string());
  const ModelDiff diff = diff_models(a, b);
  ASSERT_EQ(diff.rows.size(), a.tensors.size());
  for (const TensorDiff& r : diff.rows) {
    EXPECT_EQ(r.rel_l2, 0) << r.name;
    EXPECT_EQ(r.max_abs, 0) << r.name;
    EXPECT_EQ(r.cosine, 1.0) << r.name;
    EXPECT_EQ(r.changed_fraction, 0) << r.name;
    EXPECT_EQ(r.sparsity_a, r.sparsity_b) << r.name;
    EXPECT_FALSE(r.differs()) << r.name;
  }
  const auto s = diff.summary();
  EXPECT_EQ(s.differing, 0u);
  EXPECT_EQ(s.bytes_a, a.byte_count());
  EXPECT_EQ(s.bytes_b, a.byte_count());
}

TEST(ModelDiff, MissingTensorsShapeAndDtypeChangesAreRows) {
  const auto dir = test::fresh_temp_dir();
  const std::vector<float> x(32, 0.5f), y(8, 1.0f), z(6, 2.0f), w(5, 3.0f);
  write_safetensors((dir / "a.safetensors").string(),
                    {Tensor::from_f32(x, {4, 8}, "x"), Tensor::from_f32(y, {8}, "y"),
                     Tensor::from_f32(z, {2, 3}, "z")});
  // x holds the same values as F16 (0.5 is exact), z is transposed, y is gone, w is new.
  write_gguf((dir / "b.gguf").string(), {},
             {gguf_tensor_from_f32(Tensor::from_f32(w, {5}, "w"), "w", DType::F32),
              gguf_tensor_from_f32(Tensor::from_f32(x, {4, 8}, "x"), "x", DType::F16),
              gguf_tensor_from_f32(Tensor::from_f32(z, {3, 2}, "z"), "z", DType::F32)});
  const ModelDiff diff = diff_models(open_model_file((dir / "a.safetensors").string()),
                                     open_model_file((dir / "b.gguf").string()));
  ASSERT_EQ(diff.rows.size(), 4u);
  EXPECT_EQ(diff.rows[0].name, "x");
  EXPECT_EQ(diff.rows[0].kind, TensorDiffKind::Compared);
  EXPECT_EQ(diff.rows[0].dtype_a, DType::F32);
  EXPECT_EQ(diff.rows[0].dtype_b, DType::F16);
  EXPECT_EQ(diff.rows[0].bytes_a, 128u);
  EXPECT_EQ(diff.rows[0].bytes_b, 64u);
  EXPECT_EQ(diff.rows[0].rel_l2, 0);
  EXPECT_TRUE(diff.rows[0].differs());  // the dtype changed
  EXPECT_EQ(diff.rows[1].name, "y");
  EXPECT_EQ(diff.rows[1].kind, TensorDiffKind::OnlyInA);
  EXPECT_EQ(diff.rows[1].shape_a, Shape({8}));
  EXPECT_TRUE(diff.rows[1].shape_b.empty());
  EXPECT_EQ(diff.rows[1].bytes_b, 0u);
  EXPECT_EQ(diff.rows[2].name, "z");
  EXPECT_EQ(diff.rows[2].kind, TensorDiffKind::ShapeMismatch);
  EXPECT_EQ(diff.rows[2].shape_a, Shape({2, 3}));
  EXPECT_EQ(diff.rows[2].shape_b, Shape({3, 2}));
  EXPECT_EQ(diff.rows[3].name, "w");
  EXPECT_EQ(diff.rows[3].kind, TensorDiffKind::OnlyInB);
  EXPECT_EQ(diff.rows[3].bytes_b, 20u);
  const auto s = diff.summary();
  EXPECT_EQ(s.tensors, 4u);
  EXPECT_EQ(s.compared, 1u);
  EXPECT_EQ(s.value_changed, 0u);
  EXPECT_EQ(s.dtype_changed, 1u);
  EXPECT_EQ(s.only_in_a, 1u);
  EXPECT_EQ(s.only_in_b, 1u);
  EXPECT_EQ(s.shape_mismatch, 1u);
  EXPECT_EQ(s.differing, 4u);
}

TEST(ModelDiff, ZeroTensorsAndNonFiniteValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  ModelFile a, b;
  a.tensors = {Tensor::from_f32(std::vector<float>{0, 0, 0, 0}, {4}, "both_zero"),
               Tensor::from_f32(std::vector<float>{0, 0, 0, 0}, {4}, "a_zero"),
               Tensor::from_f32(std::vector<float>{1, nan, 2, inf}, {4}, "odd")};
  b.tensors = {Tensor::from_f32(std::vector<float>{0, -0.0f, 0, 0}, {4}, "both_zero"),
               Tensor::from_f32(std::vector<float>{0, 3, 0, 4}, {4}, "a_zero"),
               Tensor::from_f32(std::vector<float>{1, nan, 4, 1}, {4}, "odd")};
  const ModelDiff d = diff_models(a, b);
  EXPECT_EQ(d.rows[0].rel_l2, 0);
  EXPECT_EQ(d.rows[0].cosine, 1);
  EXPECT_EQ(d.rows[0].sparsity_b, 1);  // -0 is a zero
  EXPECT_FALSE(d.rows[0].differs());
  EXPECT_TRUE(std::isinf(d.rows[1].rel_l2));
  EXPECT_EQ(d.rows[1].cosine, 0);
  EXPECT_EQ(d.rows[1].max_abs, 4);
  EXPECT_EQ(d.rows[1].changed_fraction, 0.5);
  // NaN meets NaN: unchanged; Inf against 1: changed; both pairs left out of the sums.
  EXPECT_EQ(d.rows[2].sums.nonfinite, 2u);
  EXPECT_EQ(d.rows[2].sums.changed, 2u);
  EXPECT_EQ(d.rows[2].max_abs, 2);
  EXPECT_NEAR(d.rows[2].rel_l2, 2.0 / std::sqrt(5.0), 1e-15);
  EXPECT_NEAR(d.rows[2].cosine, 9.0 / (std::sqrt(5.0) * std::sqrt(17.0)), 1e-15);
}

TEST(ModelDiff, SameResultOnOneThreadAndOnMany) {
  const auto dir = test::fresh_temp_dir();
  const auto weights = random_weights();
  write_safetensors((dir / "a.safetensors").string(), weights);
  write_gguf((dir / "b.gguf").string(), {}, as_gguf(weights, DType::Q4_0));
  const ModelFile a = open_model_file((dir / "a.safetensors").string());
  const ModelFile b = open_model_file((dir / "b.gguf").string());
  const ModelDiff many = diff_models(a, b);
  ModelDiff one;
  {
    tbb::global_control single(tbb::global_control::max_allowed_parallelism, 1);
    one = diff_models(a, b);
  }
  ASSERT_EQ(one.rows.size(), many.rows.size());
  for (size_t i = 0; i < one.rows.size(); ++i) {
    EXPECT_EQ(one.rows[i].sums.sum_dd, many.rows[i].sums.sum_dd);
    EXPECT_EQ(one.rows[i].sums.sum_ab, many.rows[i].sums.sum_ab);
    EXPECT_EQ(one.rows[i].rel_l2, many.rows[i].rel_l2);
  }
  expect_matches_naive(a, b, many);
}

TEST(ModelDiff, ProgressOncePerComparedTensorThenDone) {
  const auto dir = test::fresh_temp_dir();
  const auto weights = random_weights();
  write_safetensors((dir / "a.safetensors").string(), weights);
  const ModelFile a = open_model_file((dir / "a.safetensors").string());
  std::vector<ProgressEvent> events;
  diff_models(a, a, [&](const ProgressEvent& e) { events.push_back(e); });
  ASSERT_EQ(events.size(), weights.size() + 1);
  std::set<std::string> items;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].stage, "diff");
    if (i) {
      EXPECT_GE(events[i].fraction, events[i - 1].fraction);
    }
    if (i + 1 < events.size()) items.insert(events[i].item);
  }
  EXPECT_EQ(items.size(), weights.size());
  EXPECT_EQ(events.back().fraction, 1.0);
}

TEST(ModelDiff, CancelStopsTheComparison) {
  const auto dir = test::fresh_temp_dir();
  write_safetensors((dir / "a.safetensors").string(), random_weights());
  const ModelFile a = open_model_file((dir / "a.safetensors").string());
  CancelToken before;
  before.cancel();
  EXPECT_THROW(diff_models(a, a, {}, &before), Cancelled);
  // Cancelled from the first progress event, while other tensors may still be running.
  CancelToken during;
  int events = 0;
  EXPECT_THROW(diff_models(
                   a, a, [&](const ProgressEvent&) { ++events, during.cancel(); }, &during),
               Cancelled);
  EXPECT_GE(events, 1);
  EXPECT_LT(events, int(a.tensors.size()) + 1);
}

TEST(ModelDiff, CorruptSecondFileIsOneLineError) {
  const auto dir = test::fresh_temp_dir();
  write_safetensors((dir / "a.safetensors").string(), random_weights());
  const std::string bad = (dir / "b.safetensors").string();
  test::write_bytes(bad, test::le64(1000) + "{\"x\":");
  try {
    open_model_file(bad);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(bad), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

}  // namespace
