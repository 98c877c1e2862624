// A streamed compression stopped after any checkpoint (as a kill would stop it) and
// resumed by a fresh writer gives, file for file and byte for byte, the output of an
// uninterrupted run: per-block and calibrated stages stopped part-way, multi-stage recipes
// stopped in either stage or between them, SmoothQuant stopped part-way, a whole-model
// structured stage stopped after it, bf16 activations. A checkpoint of another run is refused, naming
// what differs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "compress_test_util.h"
#include "engine/compress/compress_llama.h"
#include "engine/core/error.h"
#include "engine/export/streamed_llama_writer.h"
#include "gpt2_test_util.h"
#include "llama_reference.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

struct Stopped {};  // thrown from block_done: the run ends there, as a kill would end it

std::string contents(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

// Every file of `a` and `b`, compared byte for byte.
void expect_same_directory(const fs::path& a, const fs::path& b) {
  std::vector<std::string> na, nb;
  for (const auto& e : fs::directory_iterator(a)) na.push_back(e.path().filename().string());
  for (const auto& e : fs::directory_iterator(b)) nb.push_back(e.path().filename().string());
  std::sort(na.begin(), na.end()), std::sort(nb.begin(), nb.end());
  ASSERT_EQ(na, nb);
  for (const std::string& n : na) EXPECT_TRUE(contents(a / n) == contents(b / n)) << n;
}

struct Run {
  CompressionResult result;
  int checkpoints = 0;  // resumable block_done calls seen
};

// Compresses into `dir` with a resumable writer; stops after `stop_after` checkpoints
// (0: never), resuming first when `resume`.
// `model_type`: the family the base model says it came from ("phi3": written back fused).
Run run(const fs::path& dir, const std::string& yaml, int stop_after, bool resume,
        CompressOptions::Activations acts = CompressOptions::Activations::Auto,
        const std::string& model_type = "llama") {
  LlamaConfig c = test::compress_config(3);
  c.model_type = model_type;
  LlamaModel base = test::random_llama(c, 3);
  if (model_type == "gpt2") {  // GPT-2's block at the same widths
    Gpt2Config g = test::tiny_gpt2_config();
    g.vocab_size = 37, g.dim = c.dim, g.hidden_dim = c.hidden_dim, g.n_layers = c.n_layers;
    g.n_heads = c.n_heads, g.n_positions = 64;
    base = llama_from_gpt2(test::random_gpt2(g, 3));
  }
  const Recipe recipe = parse_recipe(yaml, "test.yaml");
  CompressOptions o;
  o.calib_windows = 5, o.calib_window = 40;
  o.activations = acts;
  StreamedLlamaWriter writer(dir.string(), DType::F32, {{"recipe", yaml}});
  if (resume) o.resume = writer.resume();
  Run r;
  o.block_done = [&](const BlockDone& d, CompressionResult& res) {
    writer.block_done(d, res);
    if (d.resumable && ++r.checkpoints == stop_after) throw Stopped{};
  };
  r.result = compress_llama(base, recipe, test::random_tokens(600, 4), o);
  writer.finish(r.result);
  EXPECT_TRUE(StreamedLlamaWriter::read_checkpoint(dir.string()).has_value());  // until discarded
  writer.discard_checkpoint();
  return r;
}

void expect_resume_equals_uninterrupted(const std::string& yaml,
                                        CompressOptions::Activations acts = CompressOptions::Activations::Auto,
                                        const std::string& model_type = "llama") {
  const auto whole_dir = test::fresh_temp_dir();
  const Run whole = run(whole_dir, yaml, 0, false, acts, model_type);
  ASSERT_GT(whole.checkpoints, 1);
  for (int stop = 1; stop <= whole.checkpoints; ++stop) {
    SCOPED_TRACE("stopped after checkpoint " + std::to_string(stop));
    const auto dir = test::fresh_temp_dir();
    EXPECT_THROW(run(dir, yaml, stop, false, acts, model_type), Stopped);
    const auto ck = StreamedLlamaWriter::read_checkpoint(dir.string());
    ASSERT_TRUE(ck.has_value());
    const Run resumed = run(dir, yaml, 0, true, acts, model_type);
    EXPECT_EQ(resumed.checkpoints, whole.checkpoints - stop);
    EXPECT_FALSE(StreamedLlamaWriter::read_checkpoint(dir.string()).has_value());  // finish() removes it
    expect_same_directory(whole_dir, dir);
    EXPECT_EQ(resumed.result.storage_bits, whole.result.storage_bits);
    ASSERT_EQ(resumed.result.layers.size(), whole.result.layers.size());
    for (size_t i = 0; i < whole.result.layers.size(); ++i) {
      const CompressedLayer &a = whole.result.layers[i], &b = resumed.result.layers[i];
      EXPECT_EQ(a.tensor.name, b.tensor.name);
      EXPECT_EQ(a.relative_error, b.relative_error) << a.tensor.name;
      EXPECT_EQ(a.scheme, b.scheme) << a.tensor.name;
      EXPECT_EQ(a.storage_bits, b.storage_bits) << a.tensor.name;
    }
  }
}

}  // namespace

TEST(CompressResume, GptqStoppedAtEveryBlock) {
  expect_resume_equals_uninterrupted("stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 32\n");
}

// The calibration pass ends after the stage's last targeted block: a run stopped in the
// blocks after it resumes with nothing left to calibrate.
TEST(CompressResume, CalibratedStageOfTheFirstBlockStoppedAfterIt) {
  expect_resume_equals_uninterrupted(
      "stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 32\n"
      "    targets: ['model.layers.0.*']\n");
}

TEST(CompressResume, GptqWithBf16Activations) {
  expect_resume_equals_uninterrupted("stages:\n  - algorithm: gptq\n    bits: 3\n    group_size: 32\n",
                                     CompressOptions::Activations::BF16);
}

TEST(CompressResume, RtnStoppedAtEveryBlock) {
  expect_resume_equals_uninterrupted("stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n");
}

TEST(CompressResume, AwqStoppedAtEveryBlock) {
  expect_resume_equals_uninterrupted("stages:\n  - algorithm: awq\n    bits: 4\n    group_size: 32\n");
}

TEST(CompressResume, TwoStagesStoppedInEitherAndBetween) {
  expect_resume_equals_uninterrupted(
      "stages:\n  - algorithm: wanda\n    sparsity: 0.5\n  - algorithm: gptq\n    bits: 4\n"
      "    group_size: 32\n    targets: ['*.self_attn.*']\n");
}

TEST(CompressResume, SmoothQuantAndStructuredStages) {
  expect_resume_equals_uninterrupted(
      "stages:\n  - algorithm: smoothquant\n    alpha: 0.5\n  - algorithm: rtn\n    bits: 8\n    group_size: 0\n");
  expect_resume_equals_uninterrupted(
      "stages:\n  - algorithm: channels\n    fraction: 0.25\n  - algorithm: gptq\n    bits: 4\n"
      "    group_size: 0\n");  // FLAP's allocation: the blocks' widths are known only after the
                               // stage ran, so a resumed
  // run takes them from the checkpoint.
  expect_resume_equals_uninterrupted(
      "stages:\n  - algorithm: flap\n    fraction: 0.3\n  - algorithm: gptq\n    bits: 4\n"
      "    group_size: 0\n");
}

// A Phi-3 is written back as Phi-3 (qkv_proj, gate_up_proj): the fused matrices in the
// scratch shards between stages and in the output are read back as the parts' views.
TEST(CompressResume, Phi3WrittenFusedStoppedAnywhere) {
  const std::string yaml =
      "stages:\n  - algorithm: wanda\n    sparsity: 0.5\n  - algorithm: gptq\n    bits: 4\n"
      "    group_size: 32\n";
  expect_resume_equals_uninterrupted(yaml, CompressOptions::Activations::Auto, "phi3");
  const auto dir = test::fresh_temp_dir();
  const ::Run whole = run(dir, yaml, 0, false, CompressOptions::Activations::Auto, "phi3");
  const auto config = nlohmann::json::parse(contents(dir / "config.json"));
  EXPECT_EQ(config["model_type"], "phi3");
  const std::string index = contents(dir / "model.safetensors.index.json");
  EXPECT_NE(index.find("model.layers.2.self_attn.qkv_proj.weight"), std::string::npos);
  EXPECT_NE(index.find("model.layers.0.mlp.gate_up_proj.weight"), std::string::npos);
  EXPECT_EQ(index.find("q_proj"), std::string::npos);
  EXPECT_EQ(index.find("mlp.up_proj"), std::string::npos);
  const LlamaModel back = load_llama(dir.string());
  EXPECT_EQ(back.cfg.model_type, "phi3");
  const std::vector<int32_t> toks = {1, 7, 30, 2, 9, 14};
  EXPECT_EQ(test::engine_logits(back, toks), test::engine_logits(whole.result.model, toks));
}

// A GPT-2 is written back as a GPT-2 (c_attn fused, Conv1D weights transposed) in the
// scratch shards and the output, and read back through its table when resumed.
TEST(CompressResume, Gpt2WrittenAsItselfStoppedAnywhere) {
  const std::string yaml =
      "stages:\n  - algorithm: smoothquant\n    alpha: 0.5\n  - algorithm: gptq\n    bits: 4\n"
      "    group_size: 32\n";
  expect_resume_equals_uninterrupted(yaml, CompressOptions::Activations::Auto, "gpt2");
  const auto dir = test::fresh_temp_dir();
  const ::Run whole = run(dir, yaml, 0, false, CompressOptions::Activations::Auto, "gpt2");
  const auto config = nlohmann::json::parse(contents(dir / "config.json"));
  EXPECT_EQ(config["model_type"], "gpt2");
  const std::string index = contents(dir / "model.safetensors.index.json");
  EXPECT_NE(index.find("transformer.h.2.attn.c_attn.weight"), std::string::npos);
  EXPECT_NE(index.find("transformer.wpe.weight"), std::string::npos);
  EXPECT_EQ(index.find("q_proj"), std::string::npos);
  const LlamaModel back = load_llama(dir.string());
  EXPECT_EQ(back.cfg.model_type, "gpt2");
  const std::vector<int32_t> toks = {1, 7, 30, 2, 9, 14};
  EXPECT_EQ(test::engine_logits(back, toks), test::engine_logits(whole.result.model, toks));
}

TEST(CompressResume, ACheckpointOfAnotherRunIsRefused) {
  const auto dir = test::fresh_temp_dir();
  const std::string yaml = "stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n";
  EXPECT_THROW(run(dir, yaml, 1, false), Stopped);
  StreamedLlamaWriter other(dir.string(), DType::F32, {{"recipe", "something else"}});
  try {
    other.resume();
    FAIL() << "resumed another run's checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a different recipe"), std::string::npos) << e.what();
  }
  StreamedLlamaWriter newer(dir.string(), DType::F32, {{"format", 2}, {"recipe", yaml}});
  try {
    newer.resume();
    FAIL() << "resumed a checkpoint of another identity format";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another version of mcw"), std::string::npos) << e.what();
  }
  StreamedLlamaWriter none(test::fresh_temp_dir().string(), DType::F32, {{"recipe", yaml}});
  EXPECT_THROW(none.resume(), Error);
}

TEST(CompressResume, ATamperedManifestGivesAnError) {
  const auto dir = test::fresh_temp_dir();
  const std::string yaml = "stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n";
  EXPECT_THROW(run(dir, yaml, 2, false), Stopped);
  std::string m = contents(dir / ".checkpoint.json");
  const size_t at = m.find("model-00001");
  ASSERT_NE(at, std::string::npos);
  m.replace(at, 5, "../..");
  std::ofstream(dir / ".checkpoint.json", std::ios::binary) << m;
  EXPECT_THROW(run(dir, yaml, 0, true), Error);
  std::ofstream(dir / ".checkpoint.json", std::ios::binary) << "{\"version\": 1, \"identity\":";
  EXPECT_THROW(StreamedLlamaWriter::read_checkpoint(dir.string()), Error);
}
