// Products with weights as files store them (f16, bf16, Q8_0, Q4_0, Q4_1) against a naive
// double-precision product of the decoded weight, on every SIMD path, small and large m;
// and a llama model saved in bf16 runs from its mapped file with the logits of the same
// weights held in f32.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/model/llama_model.h"
#include "engine/model/llama_save.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;

namespace {

Tensor stored(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(size_t(rows * cols));
  for (float& x : v) x = d(rng);
  Tensor out = Tensor::zeros(t, {rows, cols}, "w");
  from_f32(t, v.data(), out.mutable_data(), v.size());
  return out;
}

struct LevelGuard {
  LevelGuard() { set_int8_activations(false); }  // the exact path (block_gemv has its own test)
  ~LevelGuard() {
    set_simd_level(SimdLevel::Avx512);
    set_int8_activations(true);
  }
};

}  // namespace

TEST(StoredMatmul, EveryDtypeMatchesTheDecodedWeightAtEveryLevel) {
  LevelGuard restore;
  for (SimdLevel level : {SimdLevel::Generic, SimdLevel::Avx2, SimdLevel::Avx512}) {
    set_simd_level(level);
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1})
      for (int64_t m : {1, 3, 8, 9, 70})
        for (auto [n, k] : {std::pair<int64_t, int64_t>{5, 32}, {67, 96}, {300, 544}}) {
          const Tensor w = stored(t, n, k, uint32_t(n * 7 + k));
          const std::vector<float> wf = w.to_f32();
          std::mt19937 rng{uint32_t(m)};
          std::uniform_real_distribution<float> d(-1.0f, 1.0f);
          std::vector<float> x(static_cast<size_t>(m * k)), bias(static_cast<size_t>(n)),
              y(static_cast<size_t>(m * n), 0.25f);
          for (float& v : x) v = d(rng);
          for (float& v : bias) v = d(rng);
          const bool acc = m % 2 == 1;
          matmul_wt_stored(x.data(), w, y.data(), m, bias.data(), acc);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              double ref = (acc ? 0.25 : 0.0) + bias[size_t(j)], mag = std::abs(bias[size_t(j)]);
              for (int64_t p = 0; p < k; ++p) {
                const double term = double(x[size_t(i * k + p)]) * wf[size_t(j * k + p)];
                ref += term, mag += std::abs(term);
              }
              ASSERT_NEAR(y[size_t(i * n + j)], ref, 1e-5 * mag + 1e-6)
                  << dtype_name(t) << " m=" << m << " n=" << n << " k=" << k << " at "
                  << simd_level_name(level);
            }
        }
  }
}

TEST(StoredMatmul, RefusesWhatItCannotRead) {
  const Tensor odd = Tensor::zeros(DType::I32, {4, 32}, "counts");
  std::vector<float> x(32), y(4);
  EXPECT_THROW(matmul_wt_stored(x.data(), odd, y.data(), 1), Error);
  const Tensor vec = Tensor::zeros(DType::BF16, {32}, "norm");
  EXPECT_THROW(matmul_wt_stored(x.data(), 32, vec, y.data(), 4, 1), Error);
}

TEST(StoredMatmul, ReadingAnF32PointerOfABf16TensorFails) {
  const Tensor w = Tensor::zeros(DType::BF16, {2, 32}, "model.layers.0.mlp.up_proj.weight");
  try {
    (void)w.as<float>();
    FAIL() << "as<float>() of a bf16 tensor must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("up_proj"), std::string::npos) << e.what();
  }
}

// A model saved in bf16 keeps its matrices as bf16 views when loaded, and its logits are
// those of the same (bf16-rounded) weights held in f32.
TEST(StoredMatmul, Bf16ModelRunsFromItsFileLikeItsF32Twin) {
  const auto dir = test::fresh_temp_dir();
  LlamaModel f32 = test::random_llama(test::tiny_config(4, 2, /*tied=*/false), 5);
  LlamaModel bf = f32;
  for (auto [name, t] : bf.named_tensors()) {
    if (t->ndim() != 2) continue;
    Tensor b = Tensor::zeros(DType::BF16, t->shape(), name);
    from_f32(DType::BF16, t->as<float>(), b.mutable_data(), size_t(t->numel()));
    *t = b;
  }
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(bf, (dir / "m").string(), tok);
  const LlamaModel loaded = load_llama((dir / "m").string());
  EXPECT_EQ(loaded.layers[0].wq.dtype(), DType::BF16);
  EXPECT_EQ(loaded.tok_embd.dtype(), DType::BF16);
  EXPECT_EQ(loaded.layers[0].attn_norm.dtype(), DType::F32);
  // The twin: bf16 values held in f32.
  LlamaModel twin = loaded;
  for (auto [name, t] : twin.named_tensors()) *t = t->f32_copy();

  const std::vector<int32_t> tokens = {1, 5, 9, 2, 30, 7, 7, 0, 12, 3, 4};
  const int64_t V = loaded.cfg.vocab_size, T = int64_t(tokens.size());
  std::vector<float> a(size_t(T * V)), b(size_t(T * V));
  KVCache ca(loaded.cfg, T), cb(twin.cfg, T);
  llama_forward(loaded, tokens, ca, a.data());
  llama_forward(twin, tokens, cb, b.data());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5f * (1 + std::abs(b[i]))) << i;
}
