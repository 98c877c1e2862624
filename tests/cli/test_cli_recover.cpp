// `mcw recover` end to end: compress a small model, recover it by distillation from the
// source compression.json names, and read what it wrote back.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "engine/export/packed_safetensors.h"

namespace fs = std::filesystem;
using namespace mcw;
using namespace mcw::test;

namespace {

// A tiny byte-level model in d/src, a text in d/text.txt, and the model compressed by 3-bit
// RTN into d/w3 (with compression.json naming d/src as its source).
bool compress_tiny_model(const fs::path& d) {
  LlamaConfig c = tiny_config(4, 2);
  c.vocab_size = 258;
  c.hidden_dim = 64;
  c.max_seq_len = 64;
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(random_llama(c, 9), (d / "src").string(), tok);
  std::string t;
  for (int i = 0; i < 60; ++i)
    t += "Recovery text line " + std::to_string(i) + ", a few more words.\n";
  write_bytes((d / "text.txt").string(), t);
  write_bytes((d / "w3.yaml").string(),
              "stages:\n  - algorithm: rtn\n    bits: 3\n    group_size: 32\n");
  return run_mcw("compress " + (d / "src").string() + " --recipe " + (d / "w3.yaml").string() +
                 " --out " + (d / "w3").string())
             .code == 0;
}

}  // namespace

TEST(CliRecover, RecoversACompressedModelAndWritesItInItsScheme) {
  const fs::path d = fresh_dir("recover");
  const std::string src = (d / "src").string(), packed = (d / "w3").string(),
                    out = (d / "rec").string(), text = (d / "text.txt").string();
  ASSERT_TRUE(compress_tiny_model(d));

  const Result r =
      run_mcw("recover " + packed + " --text " + text + " --eval " + text +
              " --steps 6 --batch 2 --window 32 --rank 4 --eval-every 3 --scaling rora --out " +
              out + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["teacher"], src);  // from compression.json
  EXPECT_EQ(report["loss"], "kl");
  EXPECT_EQ(report["targets"], 14);
  EXPECT_EQ(report["options"]["scaling"], "rora");
  EXPECT_DOUBLE_EQ(report["options"]["scale"].get<double>(), 16.0 / 2.0);
  ASSERT_EQ(report["curve"].size(), 7u);  // the evaluation before step 1, then 6 steps
  EXPECT_TRUE(report["curve"][0].contains("eval_kl"));
  EXPECT_TRUE(report["curve"][3].contains("eval_kl"));
  EXPECT_FALSE(report["curve"][2].contains("eval_kl"));
  EXPECT_EQ(report["recoded"].size(), 14u);
  for (const char* key : {"teacher", "compressed", "adapters", "recoded"})
    EXPECT_TRUE(report["eval"].contains(key)) << key;
  for (const char* f : {"config.json", "mcw_tokenizer.json", "packed.safetensors", "recovery.json",
                        "adapter/adapter_model.safetensors", "adapter/adapter_config.json"})
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
  // Written in the compressed model's scheme: the same layers, bits and groups.
  const auto before = read_packed_safetensors(packed + "/packed.safetensors");
  const auto after = read_packed_safetensors(out + "/packed.safetensors");
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_EQ(before[i].describe(), after[i].describe()) << before[i].name;
  EXPECT_EQ(run_mcw("eval " + out + " --text " + text + " --window 32").code, 0);

  // QAT: the packed layers themselves trained and re-packed in the same layout, no adapter.
  const Result q = run_mcw("recover " + packed + " --method qat --text " + text + " --eval " +
                           text + " --steps 3 --batch 2 --window 32 --out " + out + "q --json");
  ASSERT_EQ(q.code, 0) << q.err;
  const auto qr = nlohmann::json::parse(q.out);
  EXPECT_EQ(qr["method"], "qat");
  EXPECT_TRUE(qr["eval"].contains("qat"));
  EXPECT_FALSE(fs::exists(fs::path(out + "q") / "adapter"));
  const auto trained = read_packed_safetensors(out + "q/packed.safetensors");
  ASSERT_EQ(trained.size(), before.size());
  size_t changed = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(before[i].describe(), trained[i].describe()) << before[i].name;
    changed += before[i].codes != trained[i].codes || before[i].scales != trained[i].scales;
  }
  EXPECT_GT(changed, 0u);

  // Without a teacher it trains on the next tokens; bad options are one-line errors.
  const Result ce = run_mcw("recover " + packed + " --text " + text +
                            " --no-distill --steps 2 --batch 1 --window 16 "
                            "--merge none --out " +
                            out + "2 --json");
  ASSERT_EQ(ce.code, 0) << ce.err;
  EXPECT_EQ(nlohmann::json::parse(ce.out)["loss"], "cross-entropy");
  EXPECT_FALSE(fs::exists(fs::path(out + "2") / "config.json"));
  EXPECT_TRUE(fs::exists(fs::path(out + "2") / "adapter/adapter_config.json"));
  // The adapter kept apart, merged back by mcw eval --adapter: the figure recover measured.
  const Result ev =
      run_mcw("eval " + packed + " --adapter " + out + "/adapter --text " + text + " --json");
  ASSERT_EQ(ev.code, 0) << ev.err;
  EXPECT_NEAR(nlohmann::json::parse(ev.out)["perplexity"].get<double>(),
              report["eval"]["adapters"]["perplexity"].get<double>(), 1e-6);
  expect_one_line_error(run_mcw("eval " + src + " --adapter " + packed + " --text " + text),
                        "adapter_config.json", "cannot open");

  // A chosen subset by pattern, as a recipe's targets.
  const Result mlp =
      run_mcw("recover " + packed + " --text " + text + " --targets '*mlp*' --steps 1 --batch 1 " +
              "--window 16 --merge none --out " + out + "m --json");
  ASSERT_EQ(mlp.code, 0) << mlp.err;
  EXPECT_EQ(nlohmann::json::parse(mlp.out)["targets"], 6);  // gate, up, down of 2 blocks
  expect_one_line_error(run_mcw("recover " + packed + " --text " + text +
                                " --targets '*nothing*' --out " + out + "n"),
                        "--targets", "matches no linear");
  expect_one_line_error(
      run_mcw("recover " + packed + " --text " + text + " --scaling dora --out " + out + "3"),
      "--scaling", "dora");
  expect_one_line_error(run_mcw("recover " + packed + " --text " + text + " --out " + out), "rec",
                        "not empty");
  expect_one_line_error(
      run_mcw("recover " + src + " --text " + text + " --merge recode --out " + out + "4"), "src",
      "no packed");
  expect_one_line_error(
      run_mcw("recover " + packed + " --text " + text + " --max-memory 1K --out " + out + "5"),
      "w3", "needs about");
  expect_one_line_error(run_mcw("recover " + packed + " --text " + text +
                                " --method qat --max-memory 1K --out " + out + "6"),
                        "needs about", "--method block-ap trains one block at a time");
}

// Killed right after a checkpoint, the run goes on with --resume and ends with what the
// uninterrupted run writes; without --resume the stopped run is refused, not overwritten.
TEST(CliRecover, KilledRunResumesToTheUninterruptedResult) {
  const fs::path d = fresh_dir("resume");
  const std::string packed = (d / "w3").string(), text = (d / "text.txt").string();
  ASSERT_TRUE(compress_tiny_model(d));
  const std::string common =
      "recover " + packed + " --text " + text + " --eval " + text +
      " --steps 6 --batch 2 --window 32 --rank 2 --eval-every 3 --checkpoint-every 2 --out ";
  ASSERT_EQ(run_mcw(common + (d / "whole").string()).code, 0);
  const int status =
      std::system(("MCW_FAULT_KILL_AFTER_CHECKPOINT=2 " + std::string(MCW_BINARY_DIR) +
                   "/app/mcw " + common + (d / "cut").string() + " >/dev/null 2>&1")
                      .c_str());
  // The shell may run mcw as its child (and exit 128 + 9) or exec it.
  EXPECT_TRUE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
              (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL))
      << status;
  EXPECT_FALSE(fs::exists(d / "cut"));
  EXPECT_TRUE(fs::exists(d / "cut.partial" / "recovery.checkpoint.safetensors"));
  expect_one_line_error(run_mcw(common + (d / "cut").string()), "cut.partial", "--resume");
  const Result resumed = run_mcw(common + (d / "cut").string() + " --resume");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("after step 4"), std::string::npos) << resumed.err;
  EXPECT_FALSE(fs::exists(d / "cut.partial"));
  EXPECT_FALSE(fs::exists(d / "cut" / "recovery.checkpoint.safetensors"));
  for (const char* f : {"packed.safetensors", "adapter/adapter_model.safetensors"})
    EXPECT_EQ(slurp(d / "whole" / f), slurp(d / "cut" / f)) << f;
  const auto a = nlohmann::json::parse(slurp(d / "whole" / "recovery.json"));
  const auto b = nlohmann::json::parse(slurp(d / "cut" / "recovery.json"));
  EXPECT_EQ(a["curve"].size(), b["curve"].size());
  EXPECT_EQ(a["curve"].back()["eval_kl"], b["curve"].back()["eval_kl"]);
  EXPECT_EQ(a["eval"], b["eval"]);
}

// A project's run recovered by id: exported as the run was compressed, distilled from the
// project's model on the project's calibration text.
TEST(CliRecover, RecoversAProjectsRun) {
  const fs::path d = fresh_dir("project-run");
  ASSERT_TRUE(compress_tiny_model(d));
  Project p;
  p.name = "rec";
  p.model_path = (d / "src").string();
  p.calibration_path = p.evaluation_path = (d / "text.txt").string();
  p.recipes = {{"w3", "", "stages:\n  - algorithm: rtn\n    bits: 3\n    group_size: 32\n"}};
  p.eval.window = p.eval.stride = 32;
  const std::string proj = (d / "rec.mcwproj").string();
  save_project(p, proj);
  ASSERT_EQ(run_mcw("run " + proj + " --recipe w3").code, 0);  // run 1 baseline, run 2 w3
  const std::string out = (d / "rec2").string();
  const Result r = run_mcw("recover " + proj + " --run 2 --steps 2 --batch 1 --window 16 --out " +
                           out + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["teacher"], p.model_path);
  EXPECT_EQ(j["train_text"], p.calibration_path);
  EXPECT_EQ(j["targets"], 14);
  EXPECT_TRUE(fs::exists(fs::path(out) / "packed.safetensors"));
  for (const auto& e : fs::directory_iterator(d))  // the exported run was scratch
    EXPECT_EQ(e.path().filename().string().find(".mcw-recover"), std::string::npos) << e.path();
  const Result missing = run_mcw("recover " + proj + " --run 9 --out " + out + "9");
  EXPECT_EQ(missing.code, 1);  // after the export's progress line, as mcw export --run
  EXPECT_NE(missing.err.find("no run 9"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(out + "9"));
  expect_one_line_error(run_mcw("recover " + proj + " --run x --out " + out + "x"), "--run",
                        "run id");
}

// --merge dense writes the adapters merged into dense weights (no packed layers), which
// evaluate as the adapters kept apart did; QAT takes --learn-zeros and records it.
TEST(CliRecover, DenseMergeEvaluatesAsTheAdaptersAndQatLearnsZeros) {
  const fs::path d = fresh_dir("recover-dense");
  ASSERT_TRUE(compress_tiny_model(d));
  const std::string packed = (d / "w3").string(), out = (d / "dense").string(),
                    text = (d / "text.txt").string();
  const Result r = run_mcw("recover " + packed + " --text " + text + " --eval " + text +
                           " --steps 4 --batch 2 --window 32 --lr 0.02 --merge dense --out " +
                           out + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_FALSE(report.contains("recoded"));
  EXPECT_FALSE(fs::exists(fs::path(out) / "packed.safetensors"));
  const Result ev = run_mcw("eval " + out + " --text " + text + " --json");
  ASSERT_EQ(ev.code, 0) << ev.err;
  const double merged = nlohmann::json::parse(ev.out)["perplexity"].get<double>();
  const double apart = report["eval"]["adapters"]["perplexity"].get<double>();
  EXPECT_NEAR(merged, apart, 1e-5 * apart);
  EXPECT_GT(std::abs(merged - report["eval"]["compressed"]["perplexity"].get<double>()), 1e-4);

  const Result q = run_mcw("recover " + packed + " --method qat --learn-zeros --text " + text +
                           " --steps 2 --batch 2 --window 32 --out " + out + "q --json");
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_TRUE(nlohmann::json::parse(q.out)["options"]["learn_zeros"].get<bool>());
  EXPECT_EQ(read_packed_safetensors(out + "q/packed.safetensors").size(), 14u);
}

// A GGUF model (the weights quantised in its blocks, no packed layers): every linear
// adapted over its dequantised blocks, the result merged dense and written with the
// GGUF's own tokenizer, so that it evaluates as any model directory.
TEST(CliRecover, RecoversAGgufModelWithItsTokenizer) {
  const fs::path d = fresh_dir("recover-gguf");
  ASSERT_TRUE(compress_tiny_model(d));
  const std::string src = (d / "src").string(), gguf = (d / "m.gguf").string(),
                    out = (d / "rec").string(), text = (d / "text.txt").string();
  const Result e =
      run_mcw("export " + src + " --format gguf --type Q8_0 --out " + gguf);
  ASSERT_EQ(e.code, 0) << e.err;
  const Result r = run_mcw("recover " + gguf + " --teacher " + src + " --text " + text +
                           " --steps 2 --batch 2 --window 32 --out " + out + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["targets"], 14);  // --targets all: the GGUF has no packed layers
  EXPECT_FALSE(fs::exists(fs::path(out) / "packed.safetensors"));
  const Result ev = run_mcw("eval " + out + " --text " + text + " --window 32");
  EXPECT_EQ(ev.code, 0) << ev.err;
}

// Block-AP: the packed layers trained block by block and re-packed in their layout, the
// trained norms written in place of the model's, the per-block figures in recovery.json; a
// run killed after its first block's checkpoint resumes to the uninterrupted run's files;
// without a teacher it is refused.
TEST(CliRecover, BlockApTrainsBlockByBlockAndResumesAfterABlock) {
  const fs::path d = fresh_dir("block_ap");
  const std::string src = (d / "src").string(), packed = (d / "w3").string(),
                    text = (d / "text.txt").string();
  ASSERT_TRUE(compress_tiny_model(d));
  const std::string common = "recover " + packed + " --method block-ap --text " + text +
                             " --eval " + text +
                             " --train-windows 4 --val-windows 2 --window 16 --quant-lr 1e-3 "
                             "--weight-lr 1e-3 --out ";
  const Result r = run_mcw(common + (d / "whole").string() + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["method"], "block-ap");
  EXPECT_EQ(report["teacher"], src);
  ASSERT_EQ(report["blocks"].size(), 2u);
  for (const auto& b : report["blocks"]) {
    ASSERT_EQ(b["val_mse"].size(), 2u);  // two epochs
    EXPECT_LT(b["val_mse"].back().get<double>(), b["start_val_mse"].get<double>());
  }
  EXPECT_TRUE(report["eval"].contains("block_ap"));
  EXPECT_FALSE(fs::exists(d / "whole" / "adapter"));
  const auto before = read_packed_safetensors(packed + "/packed.safetensors");
  const auto after = read_packed_safetensors((d / "whole" / "packed.safetensors").string());
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_EQ(before[i].describe(), after[i].describe()) << before[i].name;
  // The norms as trained, written in the model's dtype: not the source's any more.
  const LlamaModel written = load_llama((d / "whole").string()), source = load_llama(src);
  for (size_t l = 0; l < 2; ++l)
    for (auto norm : {&LlamaLayer::attn_norm, &LlamaLayer::ffn_norm})
      EXPECT_NE((written.layers[l].*norm).to_f32(), (source.layers[l].*norm).to_f32()) << l;

  const int status =
      std::system(("MCW_FAULT_KILL_AFTER_CHECKPOINT=1 " + std::string(MCW_BINARY_DIR) +
                   "/app/mcw " + common + (d / "cut").string() + " >/dev/null 2>&1")
                      .c_str());
  EXPECT_TRUE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
              (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL))
      << status;
  EXPECT_TRUE(fs::exists(d / "cut.partial" / "block_ap.checkpoint.safetensors"));
  expect_one_line_error(run_mcw(common + (d / "cut").string()), "cut.partial", "--resume");
  const Result resumed = run_mcw(common + (d / "cut").string() + " --resume");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("after block 1"), std::string::npos) << resumed.err;
  EXPECT_FALSE(fs::exists(d / "cut.partial"));
  for (const auto& f : fs::directory_iterator(d / "whole"))
    if (f.path().extension() == ".safetensors")
      EXPECT_EQ(slurp(f.path()), slurp(d / "cut" / f.path().filename())) << f.path();
  const auto a = nlohmann::json::parse(slurp(d / "whole" / "recovery.json"));
  const auto b = nlohmann::json::parse(slurp(d / "cut" / "recovery.json"));
  EXPECT_EQ(a["eval"], b["eval"]);

  fs::remove(packed + "/compression.json");  // no source model named: no teacher
  expect_one_line_error(run_mcw(common + (d / "none").string()), "w3", "--teacher");
}
