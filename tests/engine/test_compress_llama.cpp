// The recipe pipeline on tiny random models: sequential calibration semantics, every
// targeted weight replaced by its decoded form, accounting, and GPTQ beating RTN on the
// real (sequential) layer inputs.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>
#include <map>
#include <set>

#include "engine/compress/calibrate.h"
#include "engine/compress/compress_llama.h"
#include "engine/core/error.h"
#include "engine/recipe/recipe.h"
#include "engine/kernels/ops.h"
#include "compress_test_util.h"
#include "llama_test_util.h"
#include "cancel_latency.h"

using namespace mcw;

namespace {

double total_error(const CompressionResult& r) {
  double e = 0;
  for (const CompressedLayer& l : r.layers) e += l.relative_error;
  return e;
}

}  // namespace

TEST(Calibrate, FirstGroupSeesNormedEmbeddings) {
  LlamaModel m = test::random_llama(test::compress_config(2), 1);
  const auto win = calibration_windows(test::random_tokens(100, 2), 3, 16);
  ASSERT_EQ(win.size(), 3u);
  int calls = 0;
  CalibrationHooks h;
  h.observe = [&](const LinearGroup& g, const float* x, int64_t rows) {
    ++calls;
    if (g.layer != 0 || g.names.size() != 3 || calls != 1) return;
    ASSERT_EQ(rows, 16);
    // Reference: RMSNorm of the embedding rows, written out here.
    for (int64_t t = 0; t < rows; ++t) {
      const float* e = m.tok_embd.as<float>() + win[0][size_t(t)] * 32;
      double ss = 0;
      for (int i = 0; i < 32; ++i) ss += double(e[i]) * e[i];
      const double s = 1 / std::sqrt(ss / 32 + m.cfg.rms_eps);
      for (int i = 0; i < 32; ++i)
        ASSERT_NEAR(x[t * 32 + i], e[i] * s * m.layers[0].attn_norm.as<float>()[i], 1e-5);
    }
  };
  sequential_calibrate(m, win, h);
  EXPECT_EQ(calls, 3 * 4 * 2);  // windows × groups × layers
}

// A group's inputs come from the layers before it as already compressed: what the last
// group sees in a pass that edits weights on the way equals a plain pass over the edited
// model.
TEST(Calibrate, LaterGroupsSeeEarlierCompressedLayers) {
  const auto win = calibration_windows(test::random_tokens(80, 3), 2, 20);
  LlamaModel m = test::random_llama(test::compress_config(2), 4);
  std::vector<float> seen_editing, seen_after;
  auto capture = [](std::vector<float>& into) {
    return [&into](const LinearGroup& g, const float* x, int64_t rows) {
      if (g.layer == 1 && g.names.size() == 1 && g.names[0].find("down") != std::string::npos && into.empty())
        into.assign(x, x + rows * g.in_features);
    };
  };
  CalibrationHooks edit;
  edit.observe = capture(seen_editing);
  edit.compress = [&](const LinearGroup& g) {  // halve every weight as it is "compressed"
    for (const std::string& n : g.names) {
      Tensor* w = find_weight(m, n);
      auto v = w->to_f32();
      for (float& x : v) x *= 0.5f;
      *w = Tensor::from_f32(v, w->shape(), n);
    }
  };
  sequential_calibrate(m, win, edit);
  CalibrationHooks plain;
  plain.observe = capture(seen_after);
  sequential_calibrate(m, win, plain);
  ASSERT_EQ(seen_editing.size(), seen_after.size());
  for (size_t i = 0; i < seen_after.size(); ++i) ASSERT_NEAR(seen_editing[i], seen_after[i], 1e-5);
}

// AWQ's order: with uncompressed_inputs every group sees the forward pass of the model as it
// was before the stage, whatever the compress hooks do to the weights on the way.
TEST(Calibrate, UncompressedInputsIgnoreTheCompressHooks) {
  const auto win = calibration_windows(test::random_tokens(80, 3), 2, 20);
  const LlamaModel base = test::random_llama(test::compress_config(2), 4);
  auto seen_with = [&](bool uncompressed, bool edit) {
    LlamaModel m = base;
    std::map<std::string, std::vector<float>> seen;  // each group's inputs, all windows
    CalibrationHooks h;
    h.observe = [&](const LinearGroup& g, const float* x, int64_t rows) {
      auto& v = seen[g.names[0]];
      v.insert(v.end(), x, x + rows * g.in_features);
    };
    if (edit)
      h.compress = [&](const LinearGroup& g) {  // halve every weight as it is "compressed"
        for (const std::string& n : g.names) {
          Tensor* w = find_weight(m, n);
          auto v = w->to_f32();
          for (float& x : v) x *= 0.5f;
          *w = Tensor::from_f32(v, w->shape(), n);
        }
      };
    CalibrationOptions o;
    o.uncompressed_inputs = uncompressed;
    sequential_calibrate(m, win, h, {}, nullptr, o);
    return seen;
  };
  const auto plain = seen_with(false, false);
  EXPECT_EQ(seen_with(true, true), plain);   // as a pass over the untouched model
  EXPECT_EQ(seen_with(true, false), plain);
  EXPECT_NE(seen_with(false, true), plain);  // GPTQ's order sees the edits
}

TEST(CompressLlama, RtnReplacesEveryTargetedWeightWithItsDecodedForm) {
  const LlamaModel base = test::random_llama(test::compress_config(2), 5);
  const Recipe r = parse_recipe(
      "stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n    ignore: [\"*down_proj*\"]\n", "r.yaml");
  const CompressionResult res = compress_llama(base, r, {}, {});
  ASSERT_EQ(res.layers.size(), 2u * 6);  // q k v o gate up per layer; down ignored
  for (const CompressedLayer& l : res.layers) {
    EXPECT_EQ(l.tensor.bits, 4);
    EXPECT_EQ(l.tensor.dequantize().to_f32(), find_weight(const_cast<LlamaModel&>(res.model), l.tensor.name)->to_f32());
    EXPECT_GT(l.relative_error, 0);
    EXPECT_LT(l.relative_error, 0.02);
  }
  // The ignored weight and the base model are untouched.
  LlamaModel& m = const_cast<LlamaModel&>(res.model);
  EXPECT_EQ(find_weight(m, "model.layers.0.mlp.down_proj.weight")->to_f32(), base.layers[0].w_down.to_f32());
  // Accounting: 4-bit codes + f16 scale + 4-bit zero per group of 32, the rest at 16 bits.
  uint64_t want = 0;
  for (const auto& [name, t] : base.named_tensors()) {
    const uint64_t n = uint64_t(t->numel());
    const bool quantised = name.find("_proj") != std::string::npos && name.find("down") == std::string::npos;
    want += quantised ? n * 4 + n / 32 * (16 + 4) : n * 16;
  }
  EXPECT_EQ(res.storage_bits, want);
  EXPECT_LT(res.bits_per_weight(), 16.0);
}

TEST(CompressLlama, GptqBeatsRtnOnSequentialInputs) {
  const LlamaModel base = test::random_llama(test::compress_config(2), 6);
  const auto calib = test::random_tokens(2000, 7);
  auto run = [&](const std::string& alg) {
    return compress_llama(base, parse_recipe("stages:\n  - algorithm: " + alg +
                                             "\n    bits: 3\n    group_size: 32\n", alg), calib, test::calib_options(8, 64));
  };
  const CompressionResult rtn = run("rtn"), gptq = run("gptq");
  ASSERT_EQ(gptq.layers.size(), rtn.layers.size());
  EXPECT_TRUE(gptq.layers[0].error_on_activations);
  EXPECT_LT(total_error(gptq), total_error(rtn));
}

TEST(CompressLlama, PruningStagesReachTheirSparsity) {
  const LlamaModel base = test::random_llama(test::compress_config(2), 8);
  const auto calib = test::random_tokens(1000, 9);
  for (const char* alg : {"magnitude", "wanda", "sparsegpt"}) {
    const CompressionResult r = compress_llama(
        base, parse_recipe(std::string("stages:\n  - algorithm: ") + alg + "\n    pattern: \"2:4\"\n", alg),
        calib, test::calib_options(4, 64));
    for (const CompressedLayer& l : r.layers) {
      EXPECT_EQ(l.tensor.kept_count() * 2, l.tensor.rows * l.tensor.cols) << alg << " " << l.tensor.name;
      EXPECT_EQ(l.tensor.nm_m, 4);
    }
  }
}

TEST(CompressLlama, RecipeParametersReachTheCompressors) {
  const LlamaModel base = test::random_llama(test::compress_config(2), 10);
  const auto calib = test::random_tokens(1000, 11);
  auto run = [&](const std::string& stage) {
    return compress_llama(base, parse_recipe("stages:\n  - algorithm: " + stage, "p"), calib, test::calib_options(4, 64));
  };
  for (const CompressedLayer& l : run("kmeans\n    bits: 2\n    group_size: 32\n").layers) {
    EXPECT_EQ(l.tensor.coding, WeightCoding::Codebook);
    EXPECT_EQ(l.tensor.group_size, 32);
    EXPECT_EQ(l.tensor.codebook.size(), size_t(l.tensor.rows * (l.tensor.cols / 32) * 4));
  }
  // Row scope: every row loses exactly its half; layer scope: rows differ, the matrix halves.
  auto rows_differ = [](const CompressedTensor& t) {
    std::set<int64_t> kept;
    for (int64_t r = 0; r < t.rows; ++r) {
      int64_t k = 0;
      for (int64_t c = 0; c < t.cols; ++c) k += t.kept(r * t.cols + c);
      kept.insert(k);
    }
    return kept.size() > 1;
  };
  for (const char* alg : {"magnitude", "wanda"}) {
    const auto row = run(std::string(alg) + "\n    scope: row\n");
    const auto layer = run(std::string(alg) + "\n    scope: layer\n");
    for (size_t i = 0; i < row.layers.size(); ++i) {
      const CompressedTensor &a = row.layers[i].tensor, &b = layer.layers[i].tensor;
      EXPECT_FALSE(rows_differ(a)) << alg << " " << a.name;
      EXPECT_TRUE(rows_differ(b)) << alg << " " << b.name;
      EXPECT_EQ(a.kept_count(), a.rows * a.cols / 2);
      EXPECT_EQ(b.kept_count(), b.rows * b.cols / 2);
    }
  }
  const auto awq_rtn = run("awq\n    bits: 3\n    group_size: 32\n");
  const auto awq_gptq = run("awq\n    bits: 3\n    group_size: 32\n    quantizer: gptq\n");
  EXPECT_LT(total_error(awq_gptq), total_error(awq_rtn));
}

TEST(CompressLlama, ClearErrorsBeforeWork) {
  const LlamaModel base = test::random_llama(test::compress_config(2), 10);
  auto err = [&](const std::string& text, std::span<const int32_t> calib) {
    try {
      compress_llama(base, parse_recipe(text, "e.yaml"), calib, {});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(err("stages:\n  - algorithm: gptq\n", {}),
            "e.yaml: line 2: stage 1 (gptq): needs calibration text, and none was given");
  EXPECT_EQ(err("stages:\n  - algorithm: rtn\n    targets: [\"model.norm.weight\"]\n", {}),
            "e.yaml: line 2: stage 1 (rtn): its targets match no linear weight");
  EXPECT_EQ(err("stages:\n  - algorithm: heads\n", {}),
            "e.yaml: line 2: stage 1 (heads): needs calibration text, and none was given");
  EXPECT_EQ(err("stages:\n  - algorithm: rtn\n    group_size: 64\n", {}),
            "e.yaml: line 2: stage 1 (rtn): group_size 64 does not divide the 32 input columns of "
            "model.layers.0.self_attn.q_proj.weight");
}

TEST(CompressLlama, Cancels) {
  const LlamaModel base = test::random_llama(test::compress_config(2), 11);
  CancelToken c;
  c.cancel();
  EXPECT_THROW(compress_llama(base, parse_recipe("stages:\n  - algorithm: rtn\n    group_size: 32\n", "c"), {}, {}, {}, &c),
               Cancelled);
}

TEST(CompressLlama, AwqTensorsCarryTheirInputScale) {
  const LlamaModel base = test::random_llama(test::compress_config(2), 12);
  const auto calib = test::random_tokens(1500, 13);
  const CompressionResult res = compress_llama(
      base,
      parse_recipe("stages:\n  - algorithm: awq\n    bits: 4\n    group_size: 32\n", "a.yaml"),
      calib, test::calib_options(8, 64));
  ASSERT_EQ(res.layers.size(), 2u * 7);
  std::map<std::string, const CompressedTensor*> by_name;
  // The config has 4 heads over 2 kv heads: as the reference, o_proj is not scaled (its
  // scale could not fold into v_proj's rows), only clipped. A group whose search chose
  // α = 0 (s = 1: plain RTN) carries no scale either.
  for (const CompressedLayer& l : res.layers) by_name[l.tensor.name] = &l.tensor;
  auto scaled = [&](const std::string& name) { return !by_name.at(name)->input_scale.empty(); };
  int with_scale = 0;
  for (const CompressedLayer& l : res.layers) {
    const CompressedTensor& t = l.tensor;
    if (t.name.find("o_proj") != std::string::npos) {
      EXPECT_FALSE(scaled(t.name)) << t.name;
    }
    if (!scaled(t.name)) continue;
    ++with_scale;
    ASSERT_EQ(t.input_scale.size(), size_t(t.cols)) << t.name;
    // The model runs with exactly the tensor's decoded weight.
    EXPECT_EQ(t.dequantize().to_f32(),
              find_weight(const_cast<LlamaModel&>(res.model), t.name)->to_f32());
    EXPECT_NE(t.describe().find("input-scaled"), std::string::npos);
    // Its storage: codes, f16 scales, 4-bit zeros, and s at 16 bits per input column.
    const uint64_t n = uint64_t(t.rows * t.cols);
    EXPECT_EQ(t.storage_bits(), n * 4 + n / 32 * (16 + 4) + 16 * uint64_t(t.cols)) << t.name;
  }
  EXPECT_GE(with_scale, 6);
  // Layers that share an input share one scale (or none).
  for (const std::string p : {"model.layers.0.", "model.layers.1."}) {
    EXPECT_EQ(by_name.at(p + "self_attn.q_proj.weight")->input_scale,
              by_name.at(p + "self_attn.v_proj.weight")->input_scale);
    EXPECT_EQ(by_name.at(p + "mlp.gate_proj.weight")->input_scale,
              by_name.at(p + "mlp.up_proj.weight")->input_scale);
  }
  // Accounting as before the scale moved into the tensor: codes + group parameters + 16
  // bits per input column per layer, the rest at 16 bits.
  uint64_t want = 0;
  for (const auto& [name, t] : base.named_tensors()) {
    const uint64_t n = uint64_t(t->numel());
    want += !by_name.count(name) ? n * 16
            : n * 4 + n / 32 * (16 + 4) + (scaled(name) ? 16 * uint64_t(t->dim(1)) : 0);
  }
  EXPECT_EQ(res.storage_bits, want);
}

// MCW's option: o_proj scaled under grouped-query attention too, s kept on the layer.
TEST(CompressLlama, AwqCanScaleOProjUnderGqa) {
  const LlamaModel base = test::random_llama(test::compress_config(2), 12);
  const CompressionResult res = compress_llama(
      base,
      parse_recipe("stages:\n  - algorithm: awq\n    bits: 4\n    group_size: 32\n"
                   "    scale_gqa_o_proj: true\n    targets: ['*o_proj*']\n", "a.yaml"),
      test::random_tokens(1500, 13), test::calib_options(8, 64));
  ASSERT_EQ(res.layers.size(), 2u);
  int scaled = 0;
  for (const CompressedLayer& l : res.layers) scaled += !l.tensor.input_scale.empty();
  EXPECT_GE(scaled, 1);
}

// The calibration forward's tally counts each block's products and causal attention once
// per window (the o/down inputs are kept, so nothing is formed twice): the closed form.
TEST(CompressLlama, CalibrationForwardTallyCountsTheBlocksWork) {
  const LlamaConfig c = test::compress_config(2);
  const LlamaModel base = test::random_llama(c, 12);
  const Recipe recipe = parse_recipe("stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 32\n", "t.yaml");
  const CompressionResult r = compress_llama(base, recipe, test::random_tokens(400, 13), test::calib_options(3, 20));
  const double T = 20, D = double(c.dim), Q = double(c.q_dim()), KV = double(c.kv_dim()), H = double(c.hidden_dim);
  const double per_window = 2 * T * D * (Q + 2 * KV) + 2 * T * T * Q + 2 * T * Q * D + 4 * T * D * H + 2 * T * H * D;
  EXPECT_DOUBLE_EQ(r.calibration_forward.flops, double(c.n_layers) * 3 * per_window);
  EXPECT_GT(r.calibration_forward.seconds, 0);
  // A stage targeting block 0 alone runs one block: the pass stops after its last target.
  const Recipe first = parse_recipe(
      "stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 32\n"
      "    targets: ['model.layers.0.*']\n", "f.yaml");
  const CompressionResult f = compress_llama(base, first, test::random_tokens(400, 13), test::calib_options(3, 20));
  EXPECT_DOUBLE_EQ(f.calibration_forward.flops, 3 * per_window);
  ASSERT_EQ(f.layers.size(), 7u);
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(f.layers[i].tensor.codes, r.layers[i].tensor.codes);
  // No calibration, no tally.
  const Recipe rtn = parse_recipe("stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n", "r.yaml");
  EXPECT_EQ(compress_llama(base, rtn, {}, {}).calibration_forward.flops, 0);
}

// Progress is of the whole recipe: over several stages (calibrated or not) it never goes
// back, so a bar and its ETA do not restart at each stage.
TEST(CompressLlama, ProgressCoversTheWholeRecipe) {
  const LlamaModel base = test::random_llama(test::compress_config(2), 8);
  const Recipe r = parse_recipe(
      "stages:\n  - algorithm: wanda\n    sparsity: 0.5\n  - algorithm: rtn\n    bits: 4\n"
      "    group_size: 32\n", "p.yaml");
  std::vector<double> seen;
  const ProgressFn watch = [&](const ProgressEvent& e) { seen.push_back(e.fraction); };
  compress_llama(base, r, test::random_tokens(200, 9), {}, watch);
  ASSERT_GT(seen.size(), 4u);
  for (size_t i = 1; i < seen.size(); ++i) ASSERT_GE(seen[i], seen[i - 1]) << i;
  EXPECT_DOUBLE_EQ(seen.back(), 1.0);
  EXPECT_LE(*std::max_element(seen.begin(), seen.begin() + ptrdiff_t(seen.size() / 3)), 0.5 + 1e-12);
}

// A compression stops soon after a cancel in its middle: within a fifth of the time it took
// to get there (both measured in the same run, so a machine loaded by other tests slows
// both alike). Calibration polls per window, GPTQ per column block, the Hessian's factor
// inside its own steps.
TEST(CompressCancel, StopsSoonAfterTheCancel) {
  LlamaConfig c = test::tiny_config(8, 8);
  c.dim = 768, c.head_dim = 96, c.hidden_dim = 3072, c.n_layers = 1;
  c.vocab_size = 256, c.max_seq_len = 256;
  const LlamaModel m = test::random_llama(c, 13);
  const auto calib = test::random_tokens(4096, c.vocab_size, 14);
  const Recipe r = parse_recipe(
      "stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 128\n", "gptq");
  CompressOptions o;
  o.calib_windows = 8, o.calib_window = 256;
  CancelToken cancel;
  std::atomic<bool> halfway{false};
  const ProgressFn progress = [&](const ProgressEvent& e) {
    if (e.fraction >= 0.5) halfway = true;
  };
  const test::CancelLatency t = test::measure_cancel(
      cancel, [&](double) { return bool(halfway); },
      [&] { compress_llama(m, r, calib, o, progress, &cancel); });
  EXPECT_GT(t.before, 0.1);  // there was work to stop
  EXPECT_LT(t.latency, 0.2 * t.before) << t.before << " s to get halfway";
  RecordProperty("seconds_to_halfway", std::to_string(t.before));
  RecordProperty("cancel_latency_seconds", std::to_string(t.latency));
}
