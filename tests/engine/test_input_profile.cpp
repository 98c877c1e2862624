// Input-channel profiles: layer 0's attention input is rmsnorm(embedding)·attn_norm, which
// can be computed straight from the weights; a scaled norm weight scales its channel.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/compress/input_profile.h"
#include "engine/kernels/ops.h"
#include "llama_test_util.h"

using namespace mcw;

namespace {

std::vector<std::vector<int32_t>> windows_of(int64_t count, int64_t length, int32_t vocab) {
  std::vector<std::vector<int32_t>> w(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    for (int64_t t = 0; t < length; ++t) w[size_t(i)].push_back(int32_t((i * 7 + t * 3) % vocab));
  return w;
}

// ‖X_j‖ of layer 0's q/k/v input, from the embedding and the norm weight alone.
std::vector<double> layer0_attention_norms(const LlamaModel& m,
                                           const std::vector<std::vector<int32_t>>& windows) {
  const int64_t dim = m.cfg.dim;
  std::vector<double> sq(size_t(dim), 0.0);
  std::vector<float> y(static_cast<size_t>(dim));
  for (const auto& w : windows)
    for (int32_t id : w) {
      rmsnorm_rows(m.tok_embd.as<float>() + id * dim, m.layers[0].attn_norm.as<float>(), y.data(),
                   1, dim, m.cfg.rms_eps);
      for (int64_t j = 0; j < dim; ++j) sq[size_t(j)] += double(y[size_t(j)]) * y[size_t(j)];
    }
  for (double& v : sq) v = std::sqrt(v);
  return sq;
}

}  // namespace

TEST(InputProfile, LayerZeroAttentionInputMatchesDirectComputation) {
  const LlamaModel m = test::random_llama(test::tiny_config(), 3);
  const auto windows = windows_of(3, 10, int32_t(m.cfg.vocab_size));
  const auto profiles = profile_linear_inputs(m, windows);
  ASSERT_EQ(profiles.size(), size_t(4 * m.cfg.n_layers));
  const InputProfile& p = profiles[0];
  EXPECT_EQ(p.group.layer, 0);
  EXPECT_EQ(p.group.names.size(), 3u);  // q, k, v
  EXPECT_EQ(p.tokens, 30);
  const auto want = layer0_attention_norms(m, windows);
  ASSERT_EQ(p.norm.size(), want.size());
  for (size_t j = 0; j < want.size(); ++j) EXPECT_NEAR(p.norm[j], want[j], 1e-5 * want[j]) << j;
}

TEST(InputProfile, ScaledNormWeightScalesItsChannel) {
  LlamaModel m = test::random_llama(test::tiny_config(), 4);
  const auto windows = windows_of(2, 12, int32_t(m.cfg.vocab_size));
  const auto before = profile_linear_inputs(m, windows)[0];
  m.layers[0].attn_norm.mutable_as<float>()[5] *= 8.0f;
  const auto after = profile_linear_inputs(m, windows)[0];
  for (size_t j = 0; j < before.norm.size(); ++j)
    EXPECT_NEAR(after.norm[j], before.norm[j] * (j == 5 ? 8.0 : 1.0), 1e-6 * after.norm[j]) << j;
  EXPECT_NEAR(after.max_abs[5], 8.0f * before.max_abs[5], 1e-5f * after.max_abs[5]);
}

TEST(InputProfile, RatiosAndThresholdCount) {
  InputProfile p;
  p.norm = {4, 1, 100, 3, 2};
  p.max_abs = {0.5f, 6.0f, 7.0f, 5.9f, 1.0f};
  EXPECT_DOUBLE_EQ(p.max_over_median(), 100.0 / 3.0);
  EXPECT_DOUBLE_EQ(p.max_over_min(), 100.0);
  EXPECT_DOUBLE_EQ(p.p99_over_median(), 100.0 / 3.0);  // nearest rank of 5 values: the largest
  EXPECT_EQ(p.channels_reaching(6.0f), 2);
  p.norm = {0, 1, 2};
  EXPECT_TRUE(std::isinf(p.max_over_min()));
}
