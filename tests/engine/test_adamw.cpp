// AdamW against its update worked out by hand, the schedule at chosen steps, clipping.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "engine/train/llama_backprop.h"
#include "engine/train/optimizer.h"
#include "llama_test_util.h"

using namespace mcw;

TEST(AdamW, FirstStepIsSignedLrPlusDecay) {
  // At t = 1 the bias-corrected moments are g and g², so the step is
  // lr·(g / (|g| + eps) + wd·p): worked out by hand for these values.
  std::vector<float> p = {0.5f, -1.0f, 2.0f}, q = {0.5f};
  const std::vector<float> g = {0.1f, -0.2f, 0.0f}, gq = {0.1f};
  AdamW opt({0.9, 0.999, 1e-8, 0.1});
  opt.step({{p, g, true}, {q, gq, false}}, 0.01);
  EXPECT_NEAR(p[0], 0.5 - 0.01 * (0.1 / (0.1 + 1e-8) + 0.05), 1e-7);  // 0.4895
  EXPECT_NEAR(p[1], -1.0 - 0.01 * (-1.0 + -0.1), 1e-7);             // -0.989
  EXPECT_NEAR(p[2], 2.0 - 0.01 * 0.2, 1e-7);                        // decay only: 1.998
  EXPECT_NEAR(q[0], 0.5 - 0.01, 1e-7);                              // no decay: 0.49
  EXPECT_EQ(opt.steps(), 1);
}

TEST(AdamW, SecondStepMatchesTheRecurrence) {
  const double b1 = 0.8, b2 = 0.9, eps = 1e-3, wd = 0.05, lr1 = 0.1, lr2 = 0.05;
  std::vector<float> p = {1.5f};
  std::vector<float> g = {0.4f};
  AdamW opt({b1, b2, eps, wd});
  opt.step({{p, g, true}}, lr1);
  double w = 1.5;
  w -= lr1 * (0.4 / (0.4 + eps) + wd * 1.5);
  EXPECT_NEAR(p[0], w, 1e-6);
  g[0] = -0.3f;
  opt.step({{p, g, true}}, lr2);
  // m2 = b1·(1-b1)·0.4 + (1-b1)·(-0.3), v2 = b2·(1-b2)·0.16 + (1-b2)·0.09.
  const double m2 = b1 * (1 - b1) * 0.4 + (1 - b1) * -0.3;  // 0.004
  const double v2 = b2 * (1 - b2) * 0.16 + (1 - b2) * 0.09;  // 0.0234
  const double mh = m2 / (1 - b1 * b1), vh = v2 / (1 - b2 * b2);
  w -= lr2 * (mh / (std::sqrt(vh) + eps) + wd * w);
  EXPECT_NEAR(p[0], w, 1e-6);
}

TEST(AdamW, LlamaParamsDecayOnlyProjectionMatrices) {
  for (bool tied : {false, true}) {
    LlamaConfig c = test::tiny_config(4, 2, tied);
    c.qkv_bias = true;
    LlamaModel m = test::random_llama(c, 1);
    const LlamaModel g = zeros_like(m);
    const auto params = llama_params(m, g);
    const auto names = m.named_tensors();
    ASSERT_EQ(params.size(), names.size());
    for (size_t i = 0; i < params.size(); ++i) {
      const std::string& n = names[i].first;
      const bool matrix = n.find("proj.weight") != std::string::npos || n == "lm_head.weight";
      EXPECT_EQ(params[i].decay, matrix) << n;
      EXPECT_EQ(params[i].param.size(), size_t(names[i].second->numel())) << n;
    }
  }
}

TEST(AdamWSchedule, ValuesAtChosenSteps) {
  const LrSchedule s{1e-3, 1e-4, 10, 111};  // cosine over steps 10..110 (100 intervals)
  EXPECT_DOUBLE_EQ(lr_at(s, 0), 1e-4);      // warm-up: lr·1/10
  EXPECT_DOUBLE_EQ(lr_at(s, 4), 5e-4);
  EXPECT_DOUBLE_EQ(lr_at(s, 9), 1e-3);
  EXPECT_DOUBLE_EQ(lr_at(s, 10), 1e-3);  // cosine starts at the peak
  EXPECT_NEAR(lr_at(s, 35), 1e-4 + 0.45e-3 * (1 + std::cos(std::numbers::pi / 4)), 1e-15);
  EXPECT_NEAR(lr_at(s, 60), 5.5e-4, 1e-15);  // half way: the mean of lr and min_lr
  EXPECT_NEAR(lr_at(s, 110), 1e-4, 1e-15);   // the last step reaches min_lr
  EXPECT_NEAR(lr_at(s, 500), 1e-4, 1e-15);   // and stays there
  const LrSchedule flat{2e-3, 2e-3, 0, 50};
  for (int64_t step : {0, 7, 49}) EXPECT_DOUBLE_EQ(lr_at(flat, step), 2e-3);
}

TEST(AdamWClip, ScalesTheGlobalNormExactlyToTheLimit) {
  LlamaModel g = zeros_like(test::random_llama(test::tiny_config(), 3));
  // 3 and 4 in two different tensors: global norm 5.
  g.tok_embd.mutable_as<float>()[7] = 3.0f;
  g.layers[1].w_down.mutable_as<float>()[2] = -4.0f;
  EXPECT_DOUBLE_EQ(global_grad_norm(g), 5.0);
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 10.0), 5.0);  // under the limit: unchanged
  EXPECT_EQ(g.tok_embd.as<float>()[7], 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 2.0), 5.0);  // returns the norm before clipping
  EXPECT_NEAR(global_grad_norm(g), 2.0, 1e-6);
  EXPECT_NEAR(g.tok_embd.as<float>()[7], 1.2f, 1e-6);  // direction kept: 3·2/5
  EXPECT_NEAR(g.layers[1].w_down.as<float>()[2], -1.6f, 1e-6);
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 0.0), global_grad_norm(g));  // 0 disables
}
