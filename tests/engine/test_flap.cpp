// FLAP's global allocation (AL-AM): the allocation against the reference's procedure written
// out step by step, the stage's statistics against metrics computed from a plain forward
// pass, the model sliced to per-layer widths against the masked model, and the per-layer
// widths through save, load, recipes and refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "compress_test_util.h"
#include "engine/compress/calibrate.h"
#include "engine/compress/compress_llama.h"
#include "engine/compress/flap_stage.h"
#include "engine/compress/structured.h"
#include "engine/compress/structured_model.h"
#include "engine/core/error.h"
#include "engine/export/gguf_export.h"
#include "engine/model/llama_save.h"
#include "engine/train/llama_backprop.h"
#include "llama_reference.h"
#include "llama_test_util.h"

using namespace mcw;

namespace {

using Metrics = std::vector<std::vector<double>>;

// FLAP's prune_flap for structure AL-AM, step by step as its code runs (layers of equal
// width, as the reference stacks them): square o_proj's metric; standardise every layer's
// row (torch.std: n − 1); a head's score is the mean of its channels; heads then channels
// in one vector, sorted descending; weights `unit_weight` for heads and 1 for channels;
// the threshold is the sorted value where |cumsum − total·(1 − ratio)| is smallest (first
// index); a unit stays when its score is above the threshold. Returns the removed indices.
std::pair<Metrics, Metrics> removed_by_reference(const Metrics& attn, const Metrics& mlp,
                                                 int64_t width, double unit_weight, double ratio) {
  auto standardise = [](std::vector<double> row) {
    double mean = std::accumulate(row.begin(), row.end(), 0.0) / double(row.size()), var = 0;
    for (double v : row) var += (v - mean) * (v - mean);
    const double sd = std::sqrt(var / double(row.size() - 1));
    for (double& v : row) v = (v - mean) / sd;
    return row;
  };
  Metrics head_score, mlp_score;
  std::vector<double> all;
  for (const auto& row : attn) {
    std::vector<double> sq;
    for (double v : row) sq.push_back(v * v);
    const auto z = standardise(sq);
    std::vector<double> heads(z.size() / size_t(width), 0.0);
    for (size_t j = 0; j < z.size(); ++j) heads[j / size_t(width)] += z[j] / double(width);
    head_score.push_back(heads);
    all.insert(all.end(), heads.begin(), heads.end());
  }
  const size_t n_attn = all.size();
  for (const auto& row : mlp) {
    mlp_score.push_back(standardise(row));
    all.insert(all.end(), mlp_score.back().begin(), mlp_score.back().end());
  }
  std::vector<size_t> idx(all.size());
  std::iota(idx.begin(), idx.end(), size_t(0));
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return all[a] > all[b]; });
  std::vector<double> w(all.size());
  double total = 0;
  for (size_t i = 0; i < idx.size(); ++i) total += w[i] = idx[i] < n_attn ? unit_weight : 1.0;
  double cum = 0, best = 1e300;
  size_t arg = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    cum += w[i];
    if (std::fabs(cum - total * (1 - ratio)) < best)
      best = std::fabs(cum - total * (1 - ratio)), arg = i;
  }
  const double threshold = all[idx[arg]];
  std::pair<Metrics, Metrics> out;
  for (const auto& s : head_score) {
    out.first.emplace_back();
    for (size_t u = 0; u < s.size(); ++u)
      if (!(s[u] > threshold)) out.first.back().push_back(double(u));
  }
  for (const auto& s : mlp_score) {
    out.second.emplace_back();
    for (size_t j = 0; j < s.size(); ++j)
      if (!(s[j] > threshold)) out.second.back().push_back(double(j));
  }
  return out;
}

Metrics as_doubles(const std::vector<std::vector<int64_t>>& v) {
  Metrics m;
  for (const auto& r : v) m.emplace_back(r.begin(), r.end());
  return m;
}

Metrics random_metrics(size_t layers, size_t cols, std::mt19937& rng, double layer_spread) {
  std::lognormal_distribution<double> d(0.0, 1.0);
  Metrics m(layers);
  for (size_t l = 0; l < layers; ++l)
    for (size_t j = 0; j < cols; ++j) m[l].push_back(d(rng) * (1 + layer_spread * double(l)));
  return m;
}

const std::vector<int32_t> kProbe = {3, 17, 0, 36, 5, 5, 21, 9, 30, 1, 12};

// Four layers, 4 kv groups of 2 heads (GQA), head_dim 8, dim 64, 48 MLP channels, and a
// shared offset in the embeddings so that o/down inputs have non-zero channel means.
LlamaModel model(uint32_t seed) {
  LlamaConfig c = test::tiny_config(8, 4);
  c.hidden_dim = 48, c.n_layers = 4;
  LlamaModel m = test::random_llama(c, seed);
  for (int64_t i = 0; i < m.tok_embd.numel(); ++i)
    m.tok_embd.mutable_as<float>()[i] += 0.8f * float((i % c.dim) % 3);
  return m;
}

}  // namespace

TEST(FlapAllocation, MatchesTheReferenceProcedure) {
  std::mt19937 rng(5);
  const int64_t width = 4;
  for (double ratio : {0.1, 0.2, 0.35, 0.5}) {
    const Metrics attn = random_metrics(5, 6 * width, rng, 0.3),
                  mlp = random_metrics(5, 40, rng, -0.1);
    const double unit_weight = 512.0 / 3;
    const auto ref = removed_by_reference(attn, mlp, width, unit_weight, ratio);
    const FlapAllocation a =
        flap_global_allocation(attn, mlp, width, unit_weight, ratio, /*keep_one=*/false);
    EXPECT_EQ(as_doubles(a.heads), ref.first) << ratio;
    EXPECT_EQ(as_doubles(a.channels), ref.second) << ratio;
    // The layers differ: the allocation is global, not the same share per layer.
    std::set<size_t> counts;
    for (const auto& r : a.channels) counts.insert(r.size());
    EXPECT_GT(counts.size(), 1u) << ratio;
  }
}

// Llama-7B: a head is 4 · 128 · d weights, an MLP channel 3 · d; the reference's 512/3.
TEST(FlapAllocation, HeadWeighsItsParametersInMlpChannels) {
  LlamaConfig c;
  c.dim = 4096, c.n_heads = c.n_kv_heads = 32, c.head_dim = 128, c.hidden_dim = 11008;
  EXPECT_DOUBLE_EQ(flap_unit_weight(c), 512.0 / 3);
  c.n_kv_heads = 8;  // GQA: a unit is a kv group of 4 query heads, its k and v heads
  EXPECT_DOUBLE_EQ(flap_unit_weight(c), (2 * 512.0 + 2 * 128.0) / 3);
}

// At a high ratio some layers lose every unit in the reference; keep_one spares exactly
// each such layer's best unit and changes nothing else.
TEST(FlapAllocation, KeepOneSparesOnlyTheBestUnitOfAnEmptiedLayer) {
  std::mt19937 rng(9);
  Metrics attn = random_metrics(6, 3 * 2, rng, 0.0), mlp = random_metrics(6, 12, rng, 0.0);
  const auto ref = removed_by_reference(attn, mlp, 2, 4.0, 0.9);
  const FlapAllocation a = flap_global_allocation(attn, mlp, 2, 4.0, 0.9, true);
  int spared = 0;
  for (size_t l = 0; l < 6; ++l) {
    for (auto [got, want, all] : {std::tuple{&a.heads[l], &ref.first[l], size_t(3)},
                                  std::tuple{&a.channels[l], &ref.second[l], size_t(12)}}) {
      if (want->size() < all) {
        EXPECT_EQ(as_doubles({*got})[0], *want);
        continue;
      }
      ++spared;
      ASSERT_EQ(got->size(), all - 1);
      for (int64_t i : *got)
        EXPECT_NE(std::find(want->begin(), want->end(), double(i)), want->end());
    }
  }
  EXPECT_GT(spared, 0) << "the case must empty some layer";
}

// channel_multiple (MCW's option): every layer keeps a multiple of it, the best-scored
// channels of the reference's ranking (their standardised metric within the layer).
TEST(FlapAllocation, ChannelMultipleKeepsTheBestChannelsInWholeGroups) {
  std::mt19937 rng(13);
  const Metrics attn = random_metrics(4, 4 * 2, rng, 0.2), mlp = random_metrics(4, 64, rng, 0.2);
  const FlapAllocation plain = flap_global_allocation(attn, mlp, 2, 4.0, 0.3, true);
  const FlapAllocation a = flap_global_allocation(attn, mlp, 2, 4.0, 0.3, true, 16);
  EXPECT_EQ(a.heads, plain.heads);
  for (size_t l = 0; l < 4; ++l) {
    const size_t kept = 64 - a.channels[l].size(), plain_kept = 64 - plain.channels[l].size();
    EXPECT_EQ(kept % 16, 0u) << l;
    EXPECT_LE(std::abs(int(kept) - int(plain_kept)), 8) << l;  // the nearest multiple
    std::vector<double> order = mlp[l];
    std::sort(order.begin(), order.end(), std::greater<>());
    for (int64_t j = 0; j < 64; ++j) {
      const bool removed = std::binary_search(a.channels[l].begin(), a.channels[l].end(), j);
      EXPECT_EQ(removed, mlp[l][size_t(j)] < order[kept - 1]) << l << " " << j;
    }
  }
}

// The stage: its plan is the reference allocation of metrics computed here from a plain
// forward pass (var(x_j)·‖W[:, j]‖² of o_proj's and down_proj's inputs); the sliced model,
// with per-layer widths, computes what the big model computes with those columns zeroed
// and the stage's output biases; the removed share of the block weights is the ratio.
TEST(FlapStage, SlicesEveryLayerToItsOwnWidthAsTheMaskedModel) {
  const LlamaModel base = model(12);
  const LlamaConfig& c = base.cfg;
  const auto calib = calibration_windows(test::random_tokens(900, 11), 6, 48);
  std::vector<ChannelMoments> att(4, ChannelMoments(c.q_dim())),
      act(4, ChannelMoments(c.hidden_dim));
  CalibrationHooks h;
  h.observe = [&](const LinearGroup& g, const float* x, int64_t rows) {
    if (g.names[0].ends_with("o_proj.weight")) att[size_t(g.layer)].add(x, rows);
    if (g.names[0].ends_with("down_proj.weight")) act[size_t(g.layer)].add(x, rows);
  };
  LlamaModel plain = test::deep_copy(base);
  sequential_calibrate(plain, calib, h);
  Metrics attn(4), mlp(4);
  for (size_t l = 0; l < 4; ++l) {
    const LlamaLayer& L = base.layers[l];
    for (auto [w, m, out] :
         {std::tuple{&L.wo, &att[l], &attn[l]}, std::tuple{&L.w_down, &act[l], &mlp[l]}})
      for (int64_t j = 0; j < w->dim(1); ++j) {
        double n2 = 0;
        for (int64_t r = 0; r < w->dim(0); ++r)
          n2 += std::pow(double(w->as<float>()[r * w->dim(1) + j]), 2);
        out->push_back(m->variance(j) * n2);
      }
  }
  const double unit_weight = (2 * 16 + 2 * 8) / 3.0;  // 2 q heads + 1 k + 1 v head per unit
  const auto ref = removed_by_reference(attn, mlp, 16, unit_weight, 0.3);

  LlamaModel small = test::deep_copy(base);
  FlapOptions o;
  o.fraction = 0.3;
  std::vector<int64_t> done;
  const FlapAllocation a =
      run_flap_stage(small, o, calib, {}, {}, nullptr, {}, [&](int64_t l) { done.push_back(l); });
  EXPECT_EQ(as_doubles(a.heads), ref.first);
  EXPECT_EQ(as_doubles(a.channels), ref.second);
  EXPECT_EQ(done, (std::vector<int64_t>{0, 1, 2, 3}));
  ASSERT_FALSE(small.cfg.uniform());
  double removed = 0, all = 0;
  for (int64_t l = 0; l < 4; ++l) {
    const BlockShape b = small.cfg.block(l);
    EXPECT_EQ(b.n_kv_heads, 4 - int64_t(a.heads[size_t(l)].size()));
    EXPECT_EQ(b.n_heads, 2 * b.n_kv_heads);
    EXPECT_EQ(b.hidden_dim, 48 - int64_t(a.channels[size_t(l)].size()));
    EXPECT_EQ(small.layers[size_t(l)].wq.shape(), (Shape{b.n_heads * 8, 64}));
    EXPECT_EQ(small.layers[size_t(l)].w_down.shape(), (Shape{64, b.hidden_dim}));
    removed +=
        double(a.heads[size_t(l)].size()) * unit_weight + double(a.channels[size_t(l)].size());
    all += 4 * unit_weight + 48;
  }
  EXPECT_NEAR(removed / all, 0.3, unit_weight / all);

  LlamaModel masked = test::deep_copy(base);
  masked.cfg.o_bias = masked.cfg.down_bias = true;
  for (size_t l = 0; l < 4; ++l) {
    LlamaLayer& L = masked.layers[l];
    for (auto [w, units, width] : {std::tuple{&L.wo, &a.heads[l], int64_t(16)},
                                   std::tuple{&L.w_down, &a.channels[l], int64_t(1)}})
      for (int64_t u : *units)
        for (int64_t r = 0; r < w->dim(0); ++r)
          for (int64_t j = u * width; j < (u + 1) * width; ++j)
            w->mutable_as<float>()[r * w->dim(1) + j] = 0;
    L.bo = small.layers[l].bo, L.b_down = small.layers[l].b_down;
  }
  const auto got = test::engine_logits(small, kProbe), want = test::engine_logits(masked, kProbe);
  double scale = 0;
  for (float v : want) scale = std::max(scale, double(std::fabs(v)));
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5 * scale) << i;
}

// Per-layer widths survive a HF directory (config.json's mcw_block_shapes) and come back
// to the same logits; formats without per-layer widths and training refuse in one line.
TEST(FlapStage, PerLayerWidthsSaveLoadAndRefusals) {
  LlamaModel m = model(40);
  FlapOptions o;
  o.fraction = 0.3;
  run_flap_stage(m, o, calibration_windows(test::random_tokens(600, 41), 4, 40));
  ASSERT_FALSE(m.cfg.uniform());
  const std::string dir = testing::TempDir() + "/flap_hf";
  save_llama_hf(m, dir);
  std::ifstream f(dir + "/config.json");
  const auto j = nlohmann::json::parse(f);
  ASSERT_EQ(j["mcw_block_shapes"].size(), 4u);
  EXPECT_EQ(j["mcw_block_shapes"][1]["intermediate_size"], m.cfg.block(1).hidden_dim);
  EXPECT_EQ(j["intermediate_size"], m.cfg.hidden_dim);  // the widest block
  const LlamaModel hf = load_llama(dir);
  EXPECT_EQ(hf.cfg.block_shapes, m.cfg.block_shapes);
  EXPECT_EQ(test::engine_logits(hf, kProbe), test::engine_logits(m, kProbe));
  std::filesystem::remove_all(dir);

  auto error_of = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(error_of([&] {
              save_llama_gguf(m, testing::TempDir() + "/flap.gguf", DType::F32);
            }).find("blocks of different widths"),
            std::string::npos);
  EXPECT_NE(error_of([&] { require_trainable(m.cfg); }).find("widths of their own"),
            std::string::npos);
}

// Through a recipe: the stage runs from the registry, refuses partial targets before any
// work, and a later stage quantises the per-layer shapes.
TEST(FlapStage, RecipeRunsAndRefusesPartialTargets) {
  const LlamaModel base = model(50);
  const auto calib = test::random_tokens(900, 51);
  const Recipe r = parse_recipe(
      "stages:\n  - algorithm: flap\n    fraction: 0.25\n  - algorithm: rtn\n    bits: 4\n"
      "    group_size: 0\n",
      "f.yaml");
  const CompressionResult res = compress_llama(base, r, calib, test::calib_options(4, 40));
  EXPECT_FALSE(res.model.cfg.uniform());
  for (const CompressedLayer& l : res.layers) {
    const Tensor* w = find_weight(const_cast<LlamaModel&>(res.model), l.tensor.name);
    EXPECT_EQ(l.tensor.cols, w->dim(1)) << l.tensor.name;
    EXPECT_EQ(l.algorithm, "rtn") << l.tensor.name;
  }
  EXPECT_NO_THROW(test::engine_logits(res.model, kProbe));
  // With the widths kept in whole groups a group-wise stage can follow.
  const Recipe grouped = parse_recipe(
      "stages:\n  - algorithm: flap\n    fraction: 0.25\n    channel_multiple: 32\n"
      "  - algorithm: rtn\n    bits: 4\n    group_size: 32\n    targets: ['*.mlp.*']\n",
      "h.yaml");
  const CompressionResult g = compress_llama(base, grouped, calib, test::calib_options(4, 40));
  for (int64_t l = 0; l < 4; ++l) EXPECT_EQ(g.model.cfg.hidden_dim_of(l) % 32, 0) << l;
  try {  // refused before any work when the group size does not divide the multiple
    compress_llama(
        base,
        parse_recipe("stages:\n  - algorithm: flap\n  - algorithm: rtn\n    group_size: 32\n",
                     "k.yaml"),
        calib, test::calib_options(2, 32));
    ADD_FAILURE() << "group_size 32 after flap's single channels accepted";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find(
            "k.yaml: line 3: stage 2 (rtn): group_size 32 does not divide the input widths of "
            "model.layers.0.self_attn.o_proj.weight an earlier stage leaves (multiples of 16)"),
        std::string::npos)
        << e.what();
  }
  try {
    compress_llama(
        base, parse_recipe("stages:\n  - algorithm: flap\n    targets: [\"*o_proj*\"]\n", "g.yaml"),
        calib, test::calib_options(2, 32));
    ADD_FAILURE() << "partial targets accepted";
  } catch (const Error& e) {
    EXPECT_EQ(
        std::string(e.what()),
        "g.yaml: line 2: stage 1 (flap): must target the o_proj and down_proj of every layer "
        "(the allocation is over the whole model); model.layers.0.mlp.down_proj.weight is not "
        "targeted");
  }
}
