// Running a project's recipes into the store, on a tiny byte-level model saved to disk.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "engine/core/error.h"
#include "engine/eval/perplexity.h"
#include "engine/export/packed_safetensors.h"
#include "engine/model/llama_save.h"
#include "engine/recipe/recipe.h"
#include "engine/runs/fingerprint.h"
#include "engine/runs/project_runner.h"
#include "engine/runs/run_export.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;

namespace {

std::string make_project(const std::filesystem::path& dir, int64_t window = 32) {
  LlamaConfig c = test::tiny_config(4, 2);
  c.vocab_size = 258;
  c.max_seq_len = 48;
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(test::random_llama(c, 5), (dir / "model").string(), tok);
  test::write_bytes(dir / "calib.txt",
                    "A stitch in time saves nine. Look before you leap. "
                    "Fortune favours the bold; the early bird gets the worm.");
  test::write_bytes(dir / "eval.txt",
                    "The quick brown fox jumps over the lazy dog. Pack my box "
                    "with five dozen liquor jugs. Sphinx of black quartz.");
  Project p;
  p.name = "tiny";
  p.model_path = (dir / "model").string();
  p.calibration_path = (dir / "calib.txt").string();
  p.evaluation_path = (dir / "eval.txt").string();
  p.recipes = {{"w8", "", "stages:\n  - algorithm: rtn\n    bits: 8\n    group_size: 0\n"},
               {"bogus", "", "stages:\n  - algorithm: frobnicate\n"},
               {"w2-gptq", "",
                "stages:\n  - algorithm: gptq\n    bits: 2\n    group_size: 0\n"
                "calibration: {windows: 2, window: 16}\n"}};
  p.eval.window = window;
  p.eval.stride = 16;
  const std::string file = (dir / "tiny.mcwproj").string();
  save_project(p, file);
  return file;
}

}  // namespace

TEST(RunStoreProjectRunner, RecordsBaselineAndRecipes) {
  const auto dir = test::fresh_temp_dir();
  const ProjectRunInputs in = load_project_run_inputs(make_project(dir, 1000));
  EXPECT_EQ(in.eval.window, 48);  // shortened to the model's context
  EXPECT_EQ(in.eval.stride, 16);
  EXPECT_EQ(in.fingerprint, model_fingerprint(open_model_file((dir / "model").string())));
  EXPECT_EQ(in.database_path, (dir / "tiny.mcwdb").string());
  const auto store = RunStore::open(in.database_path);
  EXPECT_FALSE(has_project_baseline(*store, in));

  std::vector<std::string> phases;
  RunHooks hooks;
  hooks.on_phase = [&](const std::string& p) { phases.push_back(p); };
  const RecipeRunOutcome base = run_project_baseline(*store, in, hooks);
  ASSERT_EQ(base.status, RunStatus::Done) << base.error;
  EXPECT_EQ(phases, (std::vector<std::string>{"eval", "latency"}));
  EXPECT_TRUE(has_project_baseline(*store, in));
  const auto b = store->get_run(base.run_id);
  EXPECT_EQ(b->info.recipe_name, "baseline");
  // The stored perplexity is the evaluator's on the same tokens and windows.
  EXPECT_DOUBLE_EQ(*b->metric("perplexity"),
                   evaluate(in.base, in.evaluation_tokens, in.eval).perplexity);
  EXPECT_EQ(*b->metric("kl"), 0);
  EXPECT_EQ(*b->metric("top1"), 1);
  EXPECT_EQ(*b->metric("size_bytes"), double(in.base.parameter_count() * 2));
  EXPECT_GT(*b->metric("latency_ms_per_token"), 0);

  phases.clear();
  const RecipeRunOutcome w8 = run_project_recipe(*store, in, in.project.recipes[0], hooks);
  ASSERT_EQ(w8.status, RunStatus::Done) << w8.error;
  EXPECT_EQ(phases, (std::vector<std::string>{"compress", "eval", "latency"}));
  const auto r = store->get_run(w8.run_id);
  EXPECT_EQ(r->info.recipe_text, in.project.recipes[0].inline_text);
  EXPECT_EQ(r->info.model_fingerprint, in.fingerprint);
  EXPECT_NEAR(*r->metric("perplexity"), *b->metric("perplexity"), 0.05 * *b->metric("perplexity"));
  EXPECT_GE(*r->metric("kl"), 0);
  EXPECT_LT(*r->metric("kl"), 0.01);
  EXPECT_GT(*r->metric("bits_per_weight"), 8);
  EXPECT_LT(*r->metric("size_bytes"), *b->metric("size_bytes"));
  for (const char* m : {"top1", "latency_ms_per_token", "prefill_tokens_per_s", "compress_seconds"})
    EXPECT_TRUE(r->metric(m)) << m;
  // The compressed model was streamed into a scratch directory beside the store, and that
  // is gone once the run is recorded.
  for (const auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_FALSE(e.path().filename().string().starts_with(".mcw-run")) << e.path();
  // Seven linear weights in each of two blocks, two metrics each.
  ASSERT_EQ(r->layers.size(), 2u * 7u * 2u);
  for (const LayerMetric& l : r->layers)
    if (l.name == "relative_error") {
      EXPECT_LT(l.value, 1e-3) << l.layer;
    }
}

// Latency belongs to the layouts: a second run with the same layouts shares the first's
// measurement when that one was taken on a quiet machine (and measures again when not); a
// run with other layouts always measures its own. Every measurement has its spread and the
// share of the machine other processes took.
TEST(RunStoreProjectRunner, RunsWithTheSameLayoutsShareOneLatency) {
  const auto dir = test::fresh_temp_dir();
  const ProjectRunInputs in = load_project_run_inputs(make_project(dir));
  const auto store = RunStore::open(in.database_path);
  const ProjectRecipe w8 = in.project.recipes[0];
  ProjectRecipe w8_again = w8, w4 = w8;
  w8_again.name = "w8-again";
  w4.name = "w4", w4.inline_text = "stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 0\n";
  const auto first = store->get_run(run_project_recipe(*store, in, w8).run_id);
  const auto second = store->get_run(run_project_recipe(*store, in, w8_again).run_id);
  const auto other = store->get_run(run_project_recipe(*store, in, w4).run_id);
  for (const auto& r : {first, second, other}) {
    ASSERT_EQ(r->info.status, RunStatus::Done) << r->info.error;
    EXPECT_LE(*r->metric("latency_ms_per_token_min"), *r->metric("latency_ms_per_token"));
    EXPECT_GE(*r->metric("latency_ms_per_token_max"), *r->metric("latency_ms_per_token"));
    EXPECT_GE(*r->metric("latency_others_cpu"), 0.0);
    EXPECT_LE(*r->metric("latency_others_cpu"), 1.0);
    EXPECT_EQ(*r->metric("latency_busy"),
              *r->metric("latency_others_cpu") > LatencyResult::kBusyShare ? 1.0 : 0.0);
  }
  EXPECT_FALSE(first->metric("latency_shared_from_run"));
  EXPECT_EQ(*second->metric("latency_layout"), *first->metric("latency_layout"));
  EXPECT_NE(*other->metric("latency_layout"), *first->metric("latency_layout"));
  if (*first->metric("latency_busy") == 0) {
    EXPECT_EQ(*second->metric("latency_shared_from_run"), double(first->info.id));
    EXPECT_EQ(*second->metric("latency_ms_per_token"), *first->metric("latency_ms_per_token"));
  } else {
    EXPECT_FALSE(second->metric("latency_shared_from_run"));
  }
  const auto shared = other->metric("latency_shared_from_run");
  EXPECT_TRUE(!shared || *shared != double(first->info.id));
}

TEST(RunStoreProjectRunner, FailuresAndCancelAreRecorded) {
  const auto dir = test::fresh_temp_dir();
  ProjectRunInputs in = load_project_run_inputs(make_project(dir));
  const auto store = RunStore::open(in.database_path);
  const RecipeRunOutcome bad = run_project_recipe(*store, in, in.project.recipes[1]);
  EXPECT_EQ(bad.status, RunStatus::Failed);
  EXPECT_NE(bad.error.find("frobnicate"), std::string::npos) << bad.error;
  EXPECT_NE(bad.error.find("tiny.mcwproj (recipe 'bogus')"), std::string::npos) << bad.error;
  EXPECT_EQ(store->get_run(bad.run_id)->info.status, RunStatus::Failed);
  EXPECT_EQ(store->get_run(bad.run_id)->info.error, bad.error);

  CancelToken cancel;
  cancel.cancel();
  const RecipeRunOutcome c = run_project_recipe(*store, in, in.project.recipes[0], {}, &cancel);
  EXPECT_EQ(c.status, RunStatus::Cancelled);
  EXPECT_EQ(store->get_run(c.run_id)->info.status, RunStatus::Cancelled);
  EXPECT_TRUE(store->get_run(c.run_id)->metrics.empty());

  in.calibration_tokens.clear();  // GPTQ cannot run without calibration text
  const RecipeRunOutcome nocal = run_project_recipe(*store, in, in.project.recipes[2]);
  EXPECT_EQ(nocal.status, RunStatus::Failed);
  EXPECT_NE(nocal.error.find("calibration"), std::string::npos) << nocal.error;

  ProjectRecipe missing{"gone", (dir / "gone.yaml").string(), ""};
  const RecipeRunOutcome m = run_project_recipe(*store, in, missing);
  EXPECT_EQ(m.status, RunStatus::Failed);
  EXPECT_NE(m.error.find("gone.yaml"), std::string::npos);
}

TEST(RunStoreFingerprint, TracksContentNotPath) {
  const auto dir = test::fresh_temp_dir();
  const LlamaModel m = test::random_llama(test::tiny_config(4, 2), 3);
  save_llama_hf(m, (dir / "a").string());
  save_llama_hf(m, (dir / "b").string());
  LlamaModel changed = m;
  changed.layers[1].w_up = Tensor::from_f32(m.layers[1].w_up.to_f32(), m.layers[1].w_up.shape(),
                                            m.layers[1].w_up.name());
  changed.layers[1].w_up.mutable_as<float>()[17] += 1e-3f;
  save_llama_hf(changed, (dir / "c").string());
  const std::string a = model_fingerprint(open_model_file((dir / "a").string()));
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a, model_fingerprint(open_model_file((dir / "b").string())));
  EXPECT_NE(a, model_fingerprint(open_model_file((dir / "c").string())));
}

// A recipe carrying a prediction for its own stages gets it recorded beside what the run
// measures; one whose stages were edited since does not.
TEST(RunStoreProjectRunner, RecordsThePredictionMadeForTheseStages) {
  const auto dir = test::fresh_temp_dir();
  const ProjectRunInputs in = load_project_run_inputs(make_project(dir));
  const auto store = RunStore::open(in.database_path);
  Recipe r = parse_recipe(in.project.recipes[0].inline_text, "w8");
  r.prediction = {{"kl", 0.25},
                  {"bits_per_weight", 9.5},
                  {"measure", "kl"},
                  {"stages", recipe_stages_digest(r)}};
  ProjectRecipe predicted{"w8-predicted", "", recipe_to_yaml(r)};
  const auto run = store->get_run(run_project_recipe(*store, in, predicted).run_id);
  ASSERT_EQ(run->info.status, RunStatus::Done) << run->info.error;
  EXPECT_EQ(*run->metric("predicted_kl"), 0.25);
  EXPECT_EQ(*run->metric("predicted_bits_per_weight"), 9.5);
  EXPECT_FALSE(run->metric("predicted_perplexity"));

  r.stages[0].params["bits"] = 4;  // edited after the prediction
  ProjectRecipe stale{"w4-stale", "", recipe_to_yaml(r)};
  const auto other = store->get_run(run_project_recipe(*store, in, stale).run_id);
  ASSERT_EQ(other->info.status, RunStatus::Done) << other->info.error;
  EXPECT_FALSE(other->metric("predicted_kl"));
}

// A recipe with a recovery section: compressed, recovered by distillation on the project's
// calibration text, re-coded into the same layout; the run records the curve, the figures
// before recovery and the re-coding's loss, and its size is the compressed one's.
TEST(RunStoreProjectRunner, RecoveryRecordsItsCurveAndKeepsTheLayout) {
  const auto dir = test::fresh_temp_dir();
  const ProjectRunInputs in = load_project_run_inputs(make_project(dir));
  const auto store = RunStore::open(in.database_path);
  const std::string stages = "stages:\n  - algorithm: rtn\n    bits: 3\n    group_size: 0\n";
  const ProjectRecipe plain{"w3", "", stages};
  const ProjectRecipe recovered{
      "w3-lora", "",
      stages + "recovery: {steps: 4, rank: 2, batch: 2, window: 16, eval_every: 2}\n"};
  std::vector<std::string> phases;
  RunHooks hooks;
  hooks.on_phase = [&](const std::string& p) { phases.push_back(p); };
  const RecipeRunOutcome a = run_project_recipe(*store, in, plain, {});
  const RecipeRunOutcome b = run_project_recipe(*store, in, recovered, hooks);
  ASSERT_EQ(a.status, RunStatus::Done) << a.error;
  ASSERT_EQ(b.status, RunStatus::Done) << b.error;
  EXPECT_NE(std::find(phases.begin(), phases.end(), "recover"), phases.end());
  const auto ra = store->get_run(a.run_id), rb = store->get_run(b.run_id);
  EXPECT_EQ(rb->metric("size_bytes"), ra->metric("size_bytes"));
  EXPECT_EQ(rb->metric("bits_per_weight"), ra->metric("bits_per_weight"));
  // Before recovery, the run's model is the plain run's.
  EXPECT_NEAR(*rb->metric("kl_before_recovery"), *ra->metric("kl"), 1e-9);
  EXPECT_EQ(rb->metric("recovery_steps"), 4.0);
  EXPECT_TRUE(rb->metric("recovery_recode_loss_max"));
  EXPECT_FALSE(ra->metric("kl_before_recovery"));
  const std::vector<CurvePoint> curve = store->load_curve(b.run_id);
  std::map<std::string, std::vector<int64_t>> steps;
  for (const CurvePoint& p : curve) steps[p.series].push_back(p.step);
  EXPECT_EQ(steps["loss"], (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(steps["eval_kl"], (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(steps["eval_loss"], (std::vector<int64_t>{0, 2, 4}));
  EXPECT_TRUE(store->load_curve(a.run_id).empty());

  // Recovery trains on the calibration text.
  std::filesystem::create_directories(dir / "x");
  ProjectRunInputs without = load_project_run_inputs(make_project(dir / "x"));
  without.calibration_tokens.clear();
  const RecipeRunOutcome c = run_project_recipe(*store, without, recovered, {});
  EXPECT_EQ(c.status, RunStatus::Failed);
  EXPECT_NE(c.error.find("calibration text"), std::string::npos) << c.error;
}

// Exporting a recovered run redoes its recovery: the exported directory evaluates to the
// run's own perplexity and KL, for LoRA (re-coded), QAT and Block-AP (its trained norms
// written too), and holds the packed layers
// in the compressed layout. (A learning rate large enough that the re-coded update is not
// all rounded back, so that the recovered model differs from the compressed one.)
TEST(RunStoreProjectRunner, ExportOfARecoveredRunIsTheRecoveredModel) {
  const auto dir = test::fresh_temp_dir();
  const std::string project = make_project(dir);
  const ProjectRunInputs in = load_project_run_inputs(project);
  const auto store = RunStore::open(in.database_path);
  const std::string stages = "stages:\n  - algorithm: rtn\n    bits: 3\n    group_size: 0\n";
  for (const char* method : {"lora", "qat", "block-ap"}) {
    const std::string options =
        method == std::string("block-ap")
            ? "train_windows: 4, val_windows: 1, window: 16, quant_lr: 0.01, weight_lr: 0.001"
            : "steps: 4, rank: 2, batch: 2, window: 16, lr: 0.05";
    const ProjectRecipe recipe{std::string("w3-") + method, "",
                               stages + "recovery: {method: " + method + ", " + options + "}\n"};
    const RecipeRunOutcome run = run_project_recipe(*store, in, recipe, {});
    ASSERT_EQ(run.status, RunStatus::Done) << run.error;
    const std::string out = (dir / (std::string("export-") + method)).string();
    export_run(project, run.run_id, out, {});
    const LlamaModel exported = load_llama(open_model_file(out));
    const EvalResult e = evaluate(exported, in.evaluation_tokens, in.eval, &in.base);
    const auto r = store->get_run(run.run_id);
    EXPECT_NEAR(e.perplexity, *r->metric("perplexity"), 1e-6 * e.perplexity) << method;
    EXPECT_NEAR(e.kl, *r->metric("kl"), 1e-6) << method;
    EXPECT_NE(e.kl, *r->metric("kl_before_recovery")) << method;
    EXPECT_EQ(read_packed_safetensors(out + "/packed.safetensors").size(), 14u) << method;
  }
}

// A run stopped during its compression (here cancelled in the second block; a kill or a full
// disk leaves the same) keeps its checkpoint beside the store, and the next run of the
// recipe goes on from the last finished block, to the figures of an uninterrupted run.
TEST(RunStoreProjectRunner, AStoppedRunGoesOnFromItsLastBlock) {
  auto work_dirs = [](const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> found;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().filename().string().starts_with(".mcw-run-")) found.push_back(e.path());
    return found;
  };
  auto figures = [](RunStore& store, int64_t id) {
    std::map<std::string, double> f;
    const RunRecord r = *store.get_run(id);
    for (const Metric& m : r.metrics)
      if (m.name.find("seconds") == std::string::npos &&
          m.name.find("latency") == std::string::npos && m.name.find("_ms") == std::string::npos &&
          m.name.find("_per_s") == std::string::npos)
        f[m.name] = m.value;
    for (const LayerMetric& l : r.layers) f[l.layer + " " + l.name] = l.value;
    return f;
  };
  const auto whole_dir = test::fresh_temp_dir();
  const ProjectRunInputs whole_in = load_project_run_inputs(make_project(whole_dir));
  const auto whole_store = RunStore::open(whole_in.database_path);
  const RecipeRunOutcome whole =
      run_project_recipe(*whole_store, whole_in, whole_in.project.recipes[2]);
  ASSERT_EQ(whole.status, RunStatus::Done) << whole.error;
  EXPECT_TRUE(work_dirs(whole_dir).empty());

  const auto dir = test::fresh_temp_dir();
  const ProjectRunInputs in = load_project_run_inputs(make_project(dir));
  const auto store = RunStore::open(in.database_path);
  CancelToken cancel;
  std::vector<std::string> log;
  RunHooks hooks;
  hooks.log = [&](const std::string& line) { log.push_back(line); };
  hooks.progress = [&](const ProgressEvent& e) {
    if (e.item.starts_with("model.layers.1.")) cancel.cancel();
  };
  const RecipeRunOutcome stopped =
      run_project_recipe(*store, in, in.project.recipes[2], hooks, &cancel);
  ASSERT_EQ(stopped.status, RunStatus::Cancelled);
  ASSERT_EQ(work_dirs(dir).size(), 1u);
  EXPECT_TRUE(std::filesystem::exists(work_dirs(dir)[0] / ".checkpoint.json"));
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("is kept in " + work_dirs(dir)[0].string()), std::string::npos) << log[0];
  const std::vector<StoppedRunWork> kept = stopped_run_work(in.database_path);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].dir, work_dirs(dir)[0].string());
  EXPECT_EQ(kept[0].progress, "stage 1/1, 1 of 2 blocks done");
  EXPECT_GT(kept[0].bytes, 0u);

  log.clear();
  hooks.progress = nullptr;
  const RecipeRunOutcome resumed = run_project_recipe(*store, in, in.project.recipes[2], hooks);
  ASSERT_EQ(resumed.status, RunStatus::Done) << resumed.error;
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("resuming the compression from"), std::string::npos) << log[0];
  EXPECT_NE(log[0].find("(stage 1/1, 1 of 2 blocks done)"), std::string::npos) << log[0];
  EXPECT_TRUE(work_dirs(dir).empty());
  EXPECT_TRUE(stopped_run_work(in.database_path).empty());
  const auto a = figures(*whole_store, whole.run_id), b = figures(*store, resumed.run_id);
  EXPECT_GT(a.size(), 10u);
  EXPECT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) EXPECT_EQ(v, b.count(k) ? b.at(k) : -1) << k;
}

// `recipe` run whole in one fresh project, and in another stopped in its recovery (past
// 60 % of the recover phase) and run again: both outcomes, their curves and the second
// run's log (recovery checkpoints every 2 steps).
namespace {

struct StoppedAndResumed {
  RecipeRunOutcome whole, resumed;
  std::vector<CurvePoint> whole_curve, curve;
  std::vector<std::string> log;
};
StoppedAndResumed stop_in_recovery_and_resume(const ProjectRecipe& recipe) {
  auto outcome = [&](const std::filesystem::path& dir, RunHooks hooks, const CancelToken* cancel,
                     std::vector<CurvePoint>* curve = nullptr) {
    ProjectRunInputs in = load_project_run_inputs((dir / "tiny.mcwproj").string());
    in.recovery_checkpoint_every = 2;
    const auto store = RunStore::open(in.database_path);
    const RecipeRunOutcome o = run_project_recipe(*store, in, recipe, hooks, cancel);
    if (curve) *curve = store->load_curve(o.run_id);
    return o;
  };
  StoppedAndResumed r;
  const auto whole_dir = test::fresh_temp_dir();
  make_project(whole_dir);
  r.whole = outcome(whole_dir, {}, nullptr, &r.whole_curve);

  const auto dir = test::fresh_temp_dir();
  make_project(dir);
  CancelToken cancel;
  std::string phase;
  RunHooks hooks;
  hooks.log = [&](const std::string& line) { r.log.push_back(line); };
  hooks.on_phase = [&](const std::string& p) { phase = p; };
  hooks.progress = [&](const ProgressEvent& e) {
    if (phase == "recover" && e.fraction > 0.6) cancel.cancel();
  };
  EXPECT_EQ(outcome(dir, hooks, &cancel).status, RunStatus::Cancelled);
  r.log.clear();
  hooks.progress = nullptr;
  r.resumed = outcome(dir, hooks, nullptr, &r.curve);
  return r;
}

}  // namespace

// A run stopped during its recovery keeps the compression and the recovery's last
// checkpoint; the next run of the recipe goes on from both, to the uninterrupted figures.
TEST(RunStoreProjectRunner, AStoppedRecoveryGoesOnFromItsCheckpoint) {
  const StoppedAndResumed r = stop_in_recovery_and_resume(
      {"w3-lora", "",
       "stages:\n  - algorithm: rtn\n    bits: 3\n    group_size: 0\n"
       "recovery: {steps: 4, rank: 2, batch: 2, window: 16, eval_every: 2}\n"});  // stopped in step
                                                                                  // 3 or 4
  ASSERT_EQ(r.whole.status, RunStatus::Done) << r.whole.error;
  ASSERT_EQ(r.resumed.status, RunStatus::Done) << r.resumed.error;
  const std::vector<std::string>& log = r.log;
  ASSERT_EQ(log.size(), 2u);
  EXPECT_NE(log[0].find("(stage 1/1, all blocks done)"), std::string::npos) << log[0];
  EXPECT_NE(log[1].find("resuming the recovery from"), std::string::npos) << log[1];
  EXPECT_NE(log[1].find("(2 of 4 steps done)"), std::string::npos) << log[1];
  std::map<std::string, double> a, b;
  for (const Metric& m : r.whole.metrics) a[m.name] = m.value;
  for (const Metric& m : r.resumed.metrics) b[m.name] = m.value;
  for (const char* k :
       {"perplexity", "kl", "kl_before_recovery", "recovery_recode_loss_max", "size_bytes"}) {
    ASSERT_TRUE(a.count(k) && b.count(k)) << k;
    EXPECT_EQ(a[k], b[k]) << k;
  }
  ASSERT_EQ(r.curve.size(), r.whole_curve.size());
  for (size_t i = 0; i < r.curve.size(); ++i) {
    EXPECT_EQ(r.curve[i].series, r.whole_curve[i].series);
    EXPECT_EQ(r.curve[i].step, r.whole_curve[i].step);
    EXPECT_EQ(r.curve[i].value, r.whole_curve[i].value)
        << r.curve[i].series << " " << r.curve[i].step;
  }
}

// Block-AP stopped in its second block goes on from the first: the log says so, and the
// figures are the uninterrupted run's.
TEST(RunStoreProjectRunner, AStoppedBlockApGoesOnFromItsLastBlock) {
  const StoppedAndResumed r = stop_in_recovery_and_resume(
      {"w3-block-ap", "",
       "stages:\n  - algorithm: rtn\n    bits: 3\n    group_size: 0\n"
       "recovery: {method: block-ap, train_windows: 4, val_windows: 1, window: 16, "
       "quant_lr: 0.01, weight_lr: 0.001}\n"});  // stopped in the second of 2 blocks
  ASSERT_EQ(r.whole.status, RunStatus::Done) << r.whole.error;
  ASSERT_EQ(r.resumed.status, RunStatus::Done) << r.resumed.error;
  const std::vector<std::string>& log = r.log;
  ASSERT_EQ(log.size(), 2u);
  EXPECT_NE(log[1].find("resuming Block-AP from"), std::string::npos) << log[1];
  EXPECT_NE(log[1].find("(1 blocks done)"), std::string::npos) << log[1];
  std::map<std::string, double> a, b;
  for (const Metric& m : r.whole.metrics) a[m.name] = m.value;
  for (const Metric& m : r.resumed.metrics) b[m.name] = m.value;
  for (const char* k : {"perplexity", "kl", "kl_before_recovery", "recovery_steps"}) {
    ASSERT_TRUE(a.count(k) && b.count(k)) << k;
    EXPECT_EQ(a[k], b[k]) << k;
  }
}
