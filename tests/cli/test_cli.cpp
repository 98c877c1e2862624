// End-to-end checks of the `mcw` binary as a user runs it: exit codes, one-line errors
// naming the file, and inspect on each supported format.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/io/gguf.h"
#include "engine/io/llama2c.h"
#include "engine/kernels/cpu_features.h"
#include "engine/export/gguf_export.h"
#include "engine/model/llama_save.h"
#include "../engine/llama_test_util.h"
#include "../engine/quantized_checkpoint_writer.h"
#include "tests/cli/cli_test_util.h"

using namespace mcw;
namespace fs = std::filesystem;
using namespace mcw::test;

namespace {

std::string temp(const std::string& name) { return (fs::path(testing::TempDir()) / name).string(); }

LlamaModel tiny() { return test::random_llama(test::tiny_config(4, 2), 3); }

}  // namespace

TEST(Cli, VersionHelpAndUnknownCommand) {
  EXPECT_EQ(run_mcw("--version").out, std::string("mcw ") + MCW_VERSION + "\n");
  const Result help = run_mcw("--help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("inspect"), std::string::npos);
  EXPECT_EQ(run_mcw("help inspect").code, 0);
  const Result bad = run_mcw("frobnicate");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("unknown command"), std::string::npos);
  EXPECT_EQ(run_mcw("inspect --bogus x").code, 1);
}

TEST(Cli, InspectsEveryFormat) {
  const LlamaModel m = tiny();
  const std::string hf = temp("cli_hf"), gg = temp("cli.gguf");
  save_llama_hf(m, hf);
  save_llama_gguf(m, gg, DType::Q8_0);
  for (const std::string& path : {hf, gg}) {
    const Result r = run_mcw("inspect " + path);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("architecture  llama"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("total         "), std::string::npos);
  }
  const Result j = run_mcw("inspect --json " + hf);
  ASSERT_EQ(j.code, 0);
  const auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["format"], "hf-directory");
  EXPECT_EQ(doc["totals"]["parameters"], m.parameter_count());
  EXPECT_EQ(doc["tensors"][0]["stats"]["min"].is_number(), true);
}

TEST(Cli, InspectsLlama2cFiles) {
  const LlamaModel m = tiny();
  const std::string path = temp("cli_model.bin");
  save_llama_llama2c(m, path);
  const Result r = run_mcw("inspect " + path);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("llama2.c"), std::string::npos);
  EXPECT_NE(r.out.find("blk.1.ffn_up.weight"), std::string::npos);
}

TEST(Cli, MalformedFilesGiveOneLineErrors) {
  struct Case {
    const char* name;
    std::string bytes;
    const char* phrase;
  };
  std::string huge_header(8, '\0');
  huge_header[0] = '\x10', huge_header[1] = '\x27';  // header length 10000 in a tiny file
  std::string st_overlap = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
  std::string len(8, '\0');
  len[0] = char(st_overlap.size());
  std::string gguf_kv = std::string("GGUF\x03\0\0\0", 8) + std::string(8, '\0') +
                        std::string("\xff\xff\xff\xff\xff\xff\xff\x0f", 8);
  const std::vector<Case> cases = {
      {"empty.safetensors", "", "too short"},
      {"huge.safetensors", huge_header + "{}", "header"},
      {"overlap.safetensors", len + st_overlap + std::string(12, '\0'), "overlap"},
      {"badver.gguf", std::string("GGUF\x63\0\0\0", 8) + std::string(16, '\0'), "version"},
      {"kvcount.gguf", gguf_kv, "count"},
      {"short.bin", std::string(10, '\x01'), "llama2.c"},
      {"noise.dat", "hello world", "unknown model format"},
  };
  for (const Case& c : cases) {
    const std::string path = temp(c.name);
    write_bytes(path, c.bytes);
    SCOPED_TRACE(c.name);
    expect_one_line_error(run_mcw("inspect " + path), c.name, c.phrase);
  }
  expect_one_line_error(run_mcw("inspect " + temp("does-not-exist.gguf")), "does-not-exist", "no such");
}

TEST(Cli, EvalAndGenerateOnAByteModel) {
  LlamaConfig c = test::tiny_config(4, 2);
  c.vocab_size = 258;
  c.max_seq_len = 256;
  const std::string dir = temp("cli_byte_model");
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(test::random_llama(c, 5), dir, tok);
  const std::string text = temp("cli_text.txt");
  write_bytes(text, "The quick brown fox jumps over the lazy dog. Pack my box with five dozen jugs.");
  const Result r = run_mcw("eval " + dir + " --text " + text + " --window 32 --stride 16 --json --baseline " + dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["perplexity"].get<double>(), 1.0);
  EXPECT_NEAR(j["kl"].get<double>(), 0.0, 1e-9);
  EXPECT_EQ(j["top1_agreement"], 1.0);
  const Result g = run_mcw("generate " + dir + " --prompt Hi --max-tokens 5 --temperature 0.8 --seed 3");
  EXPECT_EQ(g.code, 0) << g.err;
  expect_one_line_error(run_mcw("eval " + dir + " --text " + temp("missing.txt")), "missing.txt", "cannot open");
}

// Quantised weights run on int8 activations by default (as llama.cpp's perplexity does) and
// on f32 ones with --exact-activations: close, and different where the CPU has the int8 path.
TEST(Cli, EvalOfAGptqCheckpointOnInt8OrExactActivations) {
  const fs::path dir = fs::path(testing::TempDir()) / "cli_gptq";
  TokenizerFiles tok;
  tok.byte_vocab = true, tok.byte_bos = false, tok.byte_eos = false;
  write_checkpoint(dir, Layout::GptqV1, 4, 32, false, true, tok);
  std::string bytes;  // ids below the tiny model's vocabulary of 37
  for (int i = 0; i < 200; ++i) bytes += char(1 + (i * 7) % 31);
  const std::string text = temp("cli_text_gptq.txt");
  write_bytes(text, bytes);
  double ppl[2];
  for (int exact : {0, 1}) {
    const Result r = run_mcw("eval " + dir.string() + " --text " + text + " --window 16 --json" +
                             (exact ? " --exact-activations" : ""));
    ASSERT_EQ(r.code, 0) << r.err;
    ppl[exact] = nlohmann::json::parse(r.out)["perplexity"].get<double>();
  }
  EXPECT_NEAR(ppl[0], ppl[1], 1e-2 * ppl[1]);
  if (cpu_features().level >= SimdLevel::Avx2) {
    EXPECT_NE(ppl[0], ppl[1]);
  }
}

TEST(Cli, CompressWritesAModelThatReadsBack) {
  LlamaConfig c = test::tiny_config(4, 2);
  c.vocab_size = 258;
  c.hidden_dim = 64;
  c.max_seq_len = 256;
  const std::string dir = temp("cli_compress_src"), out = temp("cli_compress_out");
  fs::remove_all(out);
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(test::random_llama(c, 9), dir, tok);
  const std::string text = temp("cli_calib.txt");
  std::string t;
  for (int i = 0; i < 40; ++i) t += "Calibration text line " + std::to_string(i) + ", some words.\n";
  write_bytes(text, t);
  const std::string recipe = temp("cli_gptq.yaml");
  write_bytes(recipe, "stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 32\n");
  const Result r = run_mcw("compress " + dir + " --recipe " + recipe + " --calib " + text +
                           " --windows 4 --window 64 --eval " + text + " --out " + out + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["layers"].size(), 14u);
  EXPECT_LT(report["bits_per_weight"].get<double>(), 16.0);
  EXPECT_GT(report["eval"]["top1_agreement"].get<double>(), 0.5);
  // The calibration forward's speed, against this machine's GEMM peak measured in the run.
  EXPECT_GT(report["calibration_forward"]["gflop"].get<double>(), 0);
  EXPECT_GT(report["calibration_forward"]["fraction_of_peak"].get<double>(), 0);
  for (const char* f : {"config.json", "model.safetensors.index.json", "mcw_tokenizer.json", "recipe.yaml", "compression.json"})
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
  EXPECT_EQ(run_mcw("inspect " + out).code, 0);
  EXPECT_EQ(run_mcw("eval " + out + " --text " + text + " --window 64").code, 0);
  // A second run into the same (now non-empty) directory is refused up front.
  expect_one_line_error(run_mcw("compress " + dir + " --recipe w4g128-rtn --out " + out), "cli_compress_out",
                        "not empty");
  // A preset by name; a recipe mistake names the recipe file and line.
  write_bytes(recipe, "stages:\n  - algorithm: rtn\n    bits: 5\n");
  expect_one_line_error(run_mcw("compress " + dir + " --recipe " + recipe + " --out " + out + "2"),
                        "cli_gptq.yaml", "line 3");
}

std::string write_recipe_w8() {
  const std::string recipe = temp("cli_bench_w8.yaml");
  write_bytes(recipe, "stages:\n  - algorithm: rtn\n    bits: 8\n    group_size: 32\n");
  return recipe;
}

TEST(Cli, BenchStreamsWhatTheLayoutStores) {
  LlamaConfig c = test::tiny_config(4, 2);
  c.vocab_size = 258;
  c.hidden_dim = 64;
  c.max_seq_len = 128;
  const std::string dir = temp("cli_bench_src");
  TokenizerFiles tok;
  tok.byte_vocab = true;
  const LlamaModel m = test::random_llama(c, 5);
  save_llama_hf(m, dir, tok);
  // Every linear and the head, each weight once: f16 is 2 bytes, f32 4.
  uint64_t weights = uint64_t(c.vocab_size * c.dim);
  for (const LlamaLayer& l : m.layers)
    for (const Tensor* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) weights += w->numel();
  auto bench = [&](const std::string& extra) {
    const Result r = run_mcw("bench " + dir + " --prefill 8 --decode 4 --repeats 2 --json " + extra);
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  };
  const auto f16 = bench(""), f32 = bench("--f32"), q8 = bench("--recipe " + write_recipe_w8());
  EXPECT_EQ(f16["weight_bytes"].get<uint64_t>(), 2 * weights);
  EXPECT_EQ(f32["weight_bytes"].get<uint64_t>(), 4 * weights);
  EXPECT_LT(q8["weight_bytes"].get<uint64_t>(), f16["weight_bytes"].get<uint64_t>());
  EXPECT_EQ(f16["prefill"].get<int>(), 8);
  EXPECT_EQ(f16["decode"].get<int>(), 4);
  EXPECT_GT(f16["decode_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(q8["prefill_tokens_per_s"].get<double>(), 0);
  expect_one_line_error(run_mcw("bench " + dir + " --prefill 0"), "prefill", "at least 1");
  expect_one_line_error(run_mcw("bench " + temp("no-such-model")), "no-such-model", "");
}
