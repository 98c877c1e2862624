// ONNX projects end to end (onnx_project_runner.h through project_runner.h), the ONNX
// sensitivity scan (onnx_sensitivity.h) and OCR sets (ocr_eval.h), on the tiny recogniser of
// onnx_tiny_recogniser.h. Images come from a fake loader (no codec, no image files).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/error.h"
#include "engine/ocr/ocr_eval.h"
#include "engine/ocr/ocr_text.h"
#include "engine/onnx/onnx_compress.h"
#include "engine/onnx/onnx_runner.h"
#include "engine/project/project.h"
#include "engine/recipe/recipe.h"
#include "engine/runs/onnx_project_runner.h"
#include "engine/runs/project_runner.h"
#include "engine/runs/run_store.h"
#include "engine/search/onnx_sensitivity.h"
#include "onnx_test_writer.h"
#include "onnx_tiny_recogniser.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;
using test::kClasses;
using test::kCols;
using test::Pb;
using test::write_recogniser;

namespace {

constexpr int64_t kParams = kClasses * kCols + kClasses * kClasses;

// Deterministic stripes per file name (its width too: 96 to 480 pixels, 48 high).
Image8 fake_image(const std::string& path) {
  uint32_t seed = 0;
  for (char c : fs::path(path).filename().string()) seed = seed * 31 + uint8_t(c);
  Image8 img;
  img.height = 48, img.width = 96 * (1 + int64_t(seed % 5)), img.channels = 3;
  const int64_t stripe = 3 + int64_t(seed % 7);
  for (int64_t y = 0; y < img.height; ++y)
    for (int64_t x = 0; x < img.width; ++x)
      for (int64_t c = 0; c < 3; ++c)
        img.pixels.push_back((x / stripe + seed) % 2 ? uint8_t(230 - 30 * c)
                                                     : uint8_t((seed + 3 * y + 7 * x) % 90));
  return img;
}

OnnxInputs line_input(const std::string& path) { return {{"x", ocr_line_input(fake_image(path))}}; }

std::string decode(const OnnxRunner& r, const OcrCharset& keys, const std::string& path) {
  const OnnxValue y = r.run(line_input(path)).at("y");
  EXPECT_EQ(y.shape.size(), 3u);
  return ctc_greedy_decode(y.f.data(), y.shape[1], y.shape[2], keys);
}

// UTF-8 code points, each as its bytes.
std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (char c : s) {
    if ((uint8_t(c) & 0xC0) != 0x80 || out.empty()) out.emplace_back();
    out.back() += c;
  }
  return out;
}

int64_t levenshtein(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::vector<int64_t>> d(a.size() + 1, std::vector<int64_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = int64_t(i);
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = int64_t(j);
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j)
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
  return d[a.size()][b.size()];
}

double metric(const RunRecord& r, const std::string& name) {
  const std::optional<double> v = r.metric(name);
  EXPECT_TRUE(v.has_value()) << r.info.recipe_name << " has no " << name;
  return v.value_or(NAN);
}

double layer_metric(const RunRecord& r, const std::string& layer, const std::string& name) {
  for (const LayerMetric& m : r.layers)
    if (m.layer == layer && m.name == name) return m.value;
  ADD_FAILURE() << r.info.recipe_name << " has no " << name << " for " << layer;
  return NAN;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// The message of the mcw::Error `f` throws.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no mcw::Error";
  return "";
}

const std::vector<std::string> kEval = {"l1.png", "l2.png", "l3.png"};

// The project (model, both sets, the recipes) in `dir`; the evaluation set's first line is
// labelled with what the model reads there, so that one line is exact.
std::string write_project(const fs::path& dir, Project* out = nullptr) {
  const fs::path model = write_recogniser(dir);
  const OnnxModel m = read_onnx(model.string());  // the runner holds a reference
  const OnnxRunner runner(m);
  const OcrCharset keys = load_ocr_keys((dir / "ppocr_keys_v1.txt").string());
  fs::create_directories(dir / "eval"), fs::create_directories(dir / "calib");
  test::write_bytes(dir / "eval" / "labels.tsv",
                    kEval[0] + "\t" + decode(runner, keys, (dir / "eval" / kEval[0]).string()) +
                        "\n" + kEval[1] + "\tdéjà vu\n" + kEval[2] + "\tabc\n");
  test::write_bytes(dir / "calib" / "labels.tsv", "c1.png\tab\nc2.png\tcd\nc3.png\te a\n");
  Project p;
  p.name = "ocr";
  p.model_path = model.string();
  p.calibration_path = (dir / "calib").string();
  p.evaluation_path = (dir / "eval").string();
  p.recipes = {{"w8-rtn", "", "stages:\n  - algorithm: rtn\n    bits: 8\n    group_size: 0\n"},
               {"w4-gptq", "", "stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 0\n"},
               {"awq", "", "stages:\n  - algorithm: awq\n"}};
  const std::string file = (dir / "ocr.mcwproj").string();
  save_project(p, file);
  if (out) *out = load_project(file);
  return file;
}

}  // namespace

TEST(OnnxProject, BaselineAndRecipeRunsAreRecorded) {
  const fs::path dir = test::fresh_temp_dir();
  const std::string file = write_project(dir);
  const std::string e = error_of([&] { load_project_run_inputs(file); });  // no image loader
  EXPECT_TRUE(contains(e, file) && contains(e, "ONNX graph")) << e;
  std::vector<std::string> seen;  // what the runner had the loader read
  const ImageLoader load = [&](const std::string& path) {
    seen.push_back(path);
    return fake_image(path);
  };
  auto loaded = [&](const fs::path& f) {
    return std::find(seen.begin(), seen.end(), f.string()) != seen.end();
  };
  const ProjectRunInputs in = load_project_run_inputs(file, load);
  ASSERT_NE(in.onnx, nullptr);
  EXPECT_FALSE(in.fingerprint.empty());
  EXPECT_EQ(in.onnx->evaluation.size(), 3u);
  EXPECT_EQ(in.onnx->calibration.value().size(), 3u);
  EXPECT_EQ(in.onnx->keys.value().labels.size(), size_t(kClasses));  // blank, a..e, space
  const std::vector<float> six(kClasses - 1, 0.1f);  // a graph scoring fewer classes is refused
  EXPECT_THROW(ctc_greedy_decode(six.data(), 1, kClasses - 1, *in.onnx->keys), Error);

  const auto store = RunStore::open(in.database_path);
  EXPECT_FALSE(has_project_baseline(*store, in));
  const RecipeRunOutcome base = run_project_baseline(*store, in);
  ASSERT_EQ(base.status, RunStatus::Done) << base.error;
  EXPECT_TRUE(has_project_baseline(*store, in));
  const RunRecord b = store->get_run(base.run_id).value();
  for (const std::string& f : kEval)  // every evaluation image, read through the loader
    EXPECT_TRUE(loaded(dir / "eval" / f)) << f;

  // The CER and exact lines, from the original graph's outputs decoded here.
  const OnnxRunner runner(in.onnx->model);
  int64_t errors = 0, chars = 0, exact = 0, read = 0;
  for (const OcrLineSample& s : in.onnx->evaluation.lines) {
    const std::string got = decode(runner, *in.onnx->keys, (dir / "eval" / s.file).string());
    const std::vector<std::string> ref = code_points(s.text), hyp = code_points(got);
    errors += levenshtein(ref, hyp), chars += int64_t(ref.size());
    exact += ref == hyp, read += !hyp.empty();
  }
  EXPECT_EQ(chars, int64_t(code_points(in.onnx->evaluation.lines[0].text).size()) + 7 + 3);
  EXPECT_GE(read, 2);  // the model reads something, so the CER is not trivially 1
  EXPECT_EQ(exact, 1);
  EXPECT_DOUBLE_EQ(metric(b, "cer"), double(errors) / double(chars));
  EXPECT_DOUBLE_EQ(metric(b, "line_accuracy"), 1.0 / 3.0);
  EXPECT_EQ(metric(b, "kl"), 0.0);
  EXPECT_GT(metric(b, "latency_ms_per_image"), 0.0);
  EXPECT_EQ(metric(b, "eval_images"), 3.0);
  EXPECT_EQ(metric(b, "bits_per_weight"), 32.0);
  EXPECT_EQ(metric(b, "parameters"), double(kParams));
  EXPECT_EQ(metric(b, "size_bytes"), 4.0 * double(kParams));
  for (const char* packed_only : {"latency_decoded_ms_per_image", "packed_kl", "packed_cer"})
    EXPECT_FALSE(b.metric(packed_only)) << packed_only << ": the baseline runs as it is";

  ASSERT_EQ(in.project.recipes.size(), 3u);
  const RecipeRunOutcome rtn = run_project_recipe(*store, in, in.project.recipes[0]);
  ASSERT_EQ(rtn.status, RunStatus::Done) << rtn.error;
  const RunRecord r = store->get_run(rtn.run_id).value();
  EXPECT_EQ(r.info.recipe_text, in.project.recipes[0].inline_text);
  EXPECT_EQ(r.info.recipe_name + " on " + r.info.model_fingerprint, "w8-rtn on " + in.fingerprint);
  const double rtn_kl = metric(r, "kl");
  EXPECT_GT(rtn_kl, 0.0);  // 8-bit weights move the probabilities, a little
  EXPECT_LT(rtn_kl, 1e-2);
  // Latency on the packed kernels, the decoded graph's beside it, and the packed graph's own
  // output scored: its int8 activations move it from the decoded one, by little.
  EXPECT_GT(metric(r, "latency_ms_per_image"), 0.0);
  EXPECT_GT(metric(r, "latency_decoded_ms_per_image"), 0.0);
  EXPECT_GT(metric(r, "packed_kl"), 0.0);
  EXPECT_LT(metric(r, "packed_kl"), 1e-2);
  EXPECT_LE(std::fabs(metric(r, "packed_cer") - metric(r, "cer")), 0.2);
  const double rtn_bits = metric(r, "bits_per_weight");
  EXPECT_TRUE(rtn_bits > 8.0 && rtn_bits < 9.0) << rtn_bits;
  EXPECT_EQ(metric(r, "parameters"), double(kParams));
  EXPECT_NEAR(metric(r, "size_bytes") * 8 / double(kParams), metric(r, "bits_per_weight"), 1e-3);
  for (const std::string layer : {"W", "Wm"}) {
    SCOPED_TRACE(layer);
    EXPECT_GT(layer_metric(r, layer, "relative_error"), 0.0);
    EXPECT_LT(layer_metric(r, layer, "relative_error"), 1e-3);
    EXPECT_GT(layer_metric(r, layer, "bits_per_weight"), 8.0);
  }
  EXPECT_LT(layer_metric(r, "W", "bits_per_weight"), 8.5);  // a scale per 1152 weights

  const RecipeRunOutcome gptq = run_project_recipe(*store, in, in.project.recipes[1]);
  ASSERT_EQ(gptq.status, RunStatus::Done) << gptq.error;
  for (const char* f : {"c1.png", "c2.png", "c3.png"})  // calibrated on the calibration set
    EXPECT_TRUE(loaded(dir / "calib" / f)) << f;
  const RunRecord q = store->get_run(gptq.run_id).value();
  const double gptq_bits = metric(q, "bits_per_weight");
  EXPECT_TRUE(gptq_bits > 4.0 && gptq_bits < 5.0) << gptq_bits;
  EXPECT_GT(metric(q, "kl"), rtn_kl);

  const RecipeRunOutcome awq = run_project_recipe(*store, in, in.project.recipes[2]);
  EXPECT_EQ(awq.status, RunStatus::Failed);
  EXPECT_TRUE(contains(awq.error, "stage 1 (awq)")) << awq.error;
  const RunRecord a = store->get_run(awq.run_id).value();
  EXPECT_EQ(a.info.status, RunStatus::Failed);
  EXPECT_TRUE(contains(a.info.error, "stage 1 (awq)")) << a.info.error;
  EXPECT_TRUE(a.metrics.empty());
  EXPECT_EQ(store->list_runs({"ocr", std::nullopt}).size(), 4u);
}

TEST(OnnxProject, CheckProjectAcceptsFolderDatasetsForOnnx) {
  const fs::path dir = test::fresh_temp_dir();
  Project p;
  write_project(dir, &p);
  for (const ProjectProblem& pr : check_project(p)) ADD_FAILURE() << pr.field << ": " << pr.message;
  Project t = p;  // a transformer reads text files there
  t.model_path = (dir / "model.gguf").string();
  test::write_bytes(t.model_path, "GGUF");
  const std::vector<ProjectProblem> problems = check_project(t);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].field, "calibration");
  EXPECT_EQ(problems[1].field, "evaluation");
  for (const ProjectProblem& pr : problems) EXPECT_TRUE(contains(pr.message, "is a directory"));
  EXPECT_TRUE(contains(problems[1].message, p.evaluation_path)) << problems[1].message;
}

TEST(OnnxSensitivity, OutputDistanceClosedForms) {
  const std::vector<float> p = {0.2f, 0.3f, 0.5f, 0.1f, 0.6f, 0.3f},
                           q = {0.25f, 0.25f, 0.5f, 0.2f, 0.5f, 0.3f};
  double want = 0;
  for (size_t k = 0; k < p.size(); ++k) want += double(p[k]) * std::log(double(p[k]) / q[k]);
  want /= 2;  // two rows
  bool kl = false;
  const OnnxValue a = OnnxValue::floats({1, 2, 3}, p), b = OnnxValue::floats({1, 2, 3}, q);
  EXPECT_NEAR(output_distance(a, b, &kl), want, 1e-9);
  EXPECT_GT(want, 0.01);
  EXPECT_TRUE(kl);
  kl = false;
  EXPECT_EQ(output_distance(a, a, &kl), 0.0);
  EXPECT_TRUE(kl);

  const std::vector<float> x = {-1.0f, 2.0f, 0.5f, 3.0f, -2.0f, 1.0f},
                           y = {-0.5f, 2.0f, 1.5f, 2.0f, -2.5f, 1.0f};
  double num = 0, den = 0;
  for (size_t k = 0; k < x.size(); ++k) num += (y[k] - x[k]) * (y[k] - x[k]), den += x[k] * x[k];
  kl = true;
  const OnnxValue c = OnnxValue::floats({1, 2, 3}, x), d = OnnxValue::floats({1, 2, 3}, y);
  EXPECT_NEAR(output_distance(c, d, &kl), num / den, 1e-12);
  EXPECT_FALSE(kl);
  kl = true;
  EXPECT_EQ(output_distance(c, c, &kl), 0.0);
  EXPECT_FALSE(kl);
  kl = true;  // non-negative rows that do not sum to 1 are no distributions either
  const OnnxValue e = OnnxValue::floats({1, 2, 3}, std::vector<float>(6, 0.5f));
  num = 0;
  for (float v : q) num += (double(v) - 0.5) * (double(v) - 0.5);
  EXPECT_NEAR(output_distance(e, b, &kl), num / 1.5, 1e-6);
  EXPECT_FALSE(kl);
  EXPECT_THROW(output_distance(a, OnnxValue::floats({1, 3, 2}, q), &kl), Error);
}

TEST(OnnxSensitivity, CellsGrowAsBitsShrink) {
  const fs::path dir = test::fresh_temp_dir();
  const OnnxModel model = read_onnx(write_recogniser(dir).string());
  std::vector<OnnxInputs> inputs;
  for (const char* f : {"s1.png", "s2.png", "s3.png"}) inputs.push_back(line_input(f));
  const std::vector<ScanSetting> settings = {scan_setting_from_name("w8"),
                                             scan_setting_from_name("w2")};
  const OnnxSensitivity s = onnx_sensitivity(model, settings, inputs);
  ASSERT_EQ(s.layers.size(), 2u);
  EXPECT_EQ(s.layers[0].name + "," + s.layers[1].name, "W,Wm");
  ASSERT_EQ(s.value.size(), 4u);
  ASSERT_EQ(s.bits.size(), 4u);
  EXPECT_TRUE(s.kl);
  for (size_t l = 0; l < 2; ++l) {
    SCOPED_TRACE(s.layers[l].name);
    EXPECT_GT(s.at(l, 0), 0.0);
    EXPECT_GT(s.at(l, 1), s.at(l, 0));
    EXPECT_LT(s.bits[l * 2 + 1], s.bits[l * 2]);
  }

  // The cells again, one recipe each written here: w8 on W (groups of 128 divide its 1152
  // columns), w2 on Wm (7 columns: one grid per output channel).
  const OnnxRunner original(model);
  auto rtn_recipe = [](int bits, int group, const std::string& target) {
    return "stages:\n  - algorithm: rtn\n    bits: " + std::to_string(bits) +
           "\n    group_size: " + std::to_string(group) + "\n    symmetric: false\n" +
           "    targets: [" + target + "]\n";
  };
  auto cell = [&](const std::string& text, const std::string& layer) {
    const OnnxCompression c = compress_onnx(model, parse_recipe(text, "test"), {});
    EXPECT_EQ(c.layers.size(), 1u);
    EXPECT_EQ(c.layers.at(0).layer.name, layer);
    const OnnxRunner runner = compressed_runner(model, c);
    double sum = 0;
    bool kl = false;
    for (const OnnxInputs& in : inputs)
      sum += output_distance(original.run(in).at("y"), runner.run(in).at("y"), &kl);
    EXPECT_TRUE(kl);
    return std::make_pair(sum / double(inputs.size()), c.layers.at(0).storage_bits);
  };
  const auto w8 = cell(rtn_recipe(8, 128, "W"), "W");
  EXPECT_DOUBLE_EQ(s.at(0, 0), w8.first);
  EXPECT_EQ(s.bits[0], w8.second);
  const auto w2 = cell(rtn_recipe(2, 0, "Wm"), "Wm");
  EXPECT_DOUBLE_EQ(s.at(1, 1), w2.first);
  EXPECT_EQ(s.bits[3], w2.second);
}

// With a store, cells are written as the heat map reads them and read back, not measured
// again; other inputs are another measurement (measured afresh).
TEST(OnnxSensitivity, CellsAreStoredAndReadBack) {
  const fs::path dir = test::fresh_temp_dir();
  const OnnxModel model = read_onnx(write_recogniser(dir).string());
  std::vector<OnnxInputs> inputs;
  for (const char* f : {"s1.png", "s2.png"}) inputs.push_back(line_input(f));
  const std::vector<ScanSetting> settings = {scan_setting_from_name("w4")};
  const auto store = RunStore::open((dir / "runs.mcwdb").string());
  std::vector<OnnxSensitivityCell> seen;
  OnnxSensitivityOptions opt{store.get(), "fp",
                             [&](const OnnxSensitivityCell& c) { seen.push_back(c); }};
  const OnnxSensitivity first = onnx_sensitivity(model, settings, inputs, {}, nullptr, opt);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(first.cached, 0u);
  for (const OnnxSensitivityCell& c : seen) EXPECT_FALSE(c.cached);
  const std::vector<SensitivityEntry> stored = store->list_sensitivity("fp");
  ASSERT_EQ(stored.size(), 4u);  // kl and bits of two cells
  for (const SensitivityEntry& e : stored) {
    EXPECT_EQ(e.setting, "w4");
    EXPECT_TRUE(e.metric.rfind("kl@onnx2#", 0) == 0 || e.metric.rfind("bits@onnx2#", 0) == 0)
        << e.metric;
  }
  seen.clear();
  const OnnxSensitivity again = onnx_sensitivity(model, settings, inputs, {}, nullptr, opt);
  EXPECT_EQ(again.cached, 2u);
  EXPECT_EQ(again.value, first.value);
  EXPECT_EQ(again.bits, first.bits);
  ASSERT_EQ(seen.size(), 2u);
  for (const OnnxSensitivityCell& c : seen) EXPECT_TRUE(c.cached && c.kl);
  inputs.pop_back();  // other inputs: measured, stored beside the first measurement
  EXPECT_EQ(onnx_sensitivity(model, settings, inputs, {}, nullptr, opt).cached, 0u);
  EXPECT_EQ(store->list_sensitivity("fp").size(), 8u);
}

TEST(OcrSet, MalformedSetsNameTheFileAndLine) {
  const fs::path dir = test::fresh_temp_dir();
  auto message = [&](const std::string& name, const char* labels) {
    fs::create_directories(dir / name);
    if (labels) test::write_bytes(dir / name / "labels.tsv", labels);
    return error_of([&] { read_ocr_set((dir / name).string()); });
  };
  std::string e = message("notab", "a.png\tabc\nb.png abc\n");
  EXPECT_TRUE(contains(e, "labels.tsv") && contains(e, "line 2")) << e;
  e = message("blank", "a.png\tabc\n\nno tab here\n");  // blank lines skipped, still counted
  EXPECT_TRUE(contains(e, "line 3")) << e;
  e = message("none", nullptr);
  EXPECT_TRUE(contains(e, (dir / "none").string()) && contains(e, "labels.tsv")) << e;
  e = message("empty", "");
  EXPECT_TRUE(contains(e, (dir / "empty").string()) && contains(e, "no samples")) << e;
  fs::create_directories(dir / "ok");
  test::write_bytes(dir / "ok" / "labels.tsv", "a.png\tab c\nb.png\t\xC3\xA9\n");
  const OcrSet ok = read_ocr_set((dir / "ok").string());  // a good one reads back as written
  ASSERT_EQ(ok.lines.size(), 2u);
  EXPECT_EQ(ok.kind, OcrSet::Lines);
  EXPECT_EQ(ok.lines[0].file + "|" + ok.lines[0].text + "|" + ok.lines[1].text,
            "a.png|ab c|\xC3\xA9");
}
