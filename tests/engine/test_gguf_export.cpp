// mcw export --format gguf: llama.cpp's file types and mixes, the tokenizer key/values, and
// files that read back through MCW to the values, types and errors the export reports.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "cancel_latency.h"
#include "engine/compress/compress_llama.h"
#include "engine/core/error.h"
#include "engine/export/gguf_export.h"
#include "engine/export/gguf_file_type.h"
#include "engine/export/importance_matrix.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/gguf.h"
#include "engine/io/model_file.h"
#include "engine/model/bpe_tokenizer.h"
#include "engine/model/bpe_trainer.h"
#include "engine/model/llama_save.h"
#include "engine/model/tokenizer_loader.h"
#include "engine/recipe/recipe.h"
#include "llama_reference.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

// The tensor list of a Llama-3-8B GGUF (32 blocks, no biases, untied output), each with
// the type `ft` gives it: written here from the file's layout, not from the exporter.
std::map<DType, int> llama3_8b_type_counts(const GgufFileType& ft) {
  std::map<DType, int> counts;
  auto add = [&](GgufTensorRole role, int layer, int64_t cols, bool matrix) {
    GgufTensorPlace p;
    p.role = role, p.layer = layer, p.n_layers = 32, p.cols = cols, p.matrix = matrix;
    ++counts[gguf_tensor_type(ft, p)];
  };
  add(GgufTensorRole::TokenEmbd, 0, 4096, true);
  for (int l = 0; l < 32; ++l) {
    add(GgufTensorRole::Other, l, 4096, false);  // attn_norm
    add(GgufTensorRole::AttnQ, l, 4096, true);
    add(GgufTensorRole::AttnK, l, 4096, true);
    add(GgufTensorRole::AttnV, l, 4096, true);
    add(GgufTensorRole::AttnOutput, l, 4096, true);
    add(GgufTensorRole::Other, l, 4096, false);  // ffn_norm
    add(GgufTensorRole::FfnGate, l, 4096, true);
    add(GgufTensorRole::FfnUp, l, 4096, true);
    add(GgufTensorRole::FfnDown, l, 14336, true);
  }
  add(GgufTensorRole::Other, 0, 4096, false);  // output_norm
  add(GgufTensorRole::Output, 0, 4096, true);
  return counts;
}

LlamaConfig k_quant_config() {  // rows of 256 values, as the K-quants need
  LlamaConfig c = test::tiny_config(4, 2);
  c.dim = 256, c.head_dim = 64, c.hidden_dim = 512, c.vocab_size = 258;
  return c;
}

fs::path save_with_byte_vocab(const LlamaModel& m, const fs::path& dir) {
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(m, dir.string(), tok);
  return dir;
}

double rel_error(const Tensor& got, const Tensor& want) {
  const std::vector<float> a = got.to_f32(), b = want.to_f32();
  double d = 0, r = 0;
  for (size_t i = 0; i < a.size(); ++i)
    d += (double(a[i]) - b[i]) * (double(a[i]) - b[i]), r += double(b[i]) * b[i];
  return std::sqrt(d / r);
}

}  // namespace

// llama.cpp's log for a Llama-3-8B Q4_K_M file reads "type f32: 65, q4_K: 193, q6_K: 33".
TEST(GgufFileType, Llama3_8bQ4KMMatchesLlamaCppCounts) {
  const auto c = llama3_8b_type_counts(*find_gguf_file_type("Q4_K_M"));
  EXPECT_EQ(c.at(DType::F32), 65);
  EXPECT_EQ(c.at(DType::Q4_K), 193);
  EXPECT_EQ(c.at(DType::Q6_K), 33);
  EXPECT_EQ(c.size(), 3u);
}

TEST(GgufFileType, MixesAndFallbacks) {
  const auto q8 = llama3_8b_type_counts(*find_gguf_file_type("Q8_0"));
  EXPECT_EQ(q8.at(DType::Q8_0), 226);  // output stays Q8_0 in a Q8_0 file
  const auto q40 = llama3_8b_type_counts(*find_gguf_file_type("Q4_0"));
  EXPECT_EQ(q40.at(DType::Q4_0), 225);
  EXPECT_EQ(q40.at(DType::Q6_K), 1);  // output: Q6_K
  const auto f16 = llama3_8b_type_counts(*find_gguf_file_type("F16"));
  EXPECT_EQ(f16.at(DType::F16), 226);
  EXPECT_EQ(f16.at(DType::F32), 65);
  // Q4_K_S: attn_v of the first four layers and ffn_down of the first eighth get Q5_K.
  const auto ks = llama3_8b_type_counts(*find_gguf_file_type("Q4_K_S"));
  EXPECT_EQ(ks.at(DType::Q5_K), 8);
  // Rows that are not whole 256-value blocks fall back as llama.cpp does (Qwen2-0.5B's 896).
  GgufTensorPlace p;
  p.role = GgufTensorRole::AttnQ, p.cols = 896, p.n_layers = 24;
  EXPECT_EQ(gguf_tensor_type(*find_gguf_file_type("Q4_K_M"), p), DType::Q5_0);
  EXPECT_EQ(gguf_tensor_type(*find_gguf_file_type("Q5_K_M"), p), DType::Q5_1);
  EXPECT_EQ(gguf_tensor_type(*find_gguf_file_type("Q6_K"), p), DType::Q8_0);
  p.cols = 100;  // not even 32-value blocks: F16
  EXPECT_EQ(gguf_tensor_type(*find_gguf_file_type("Q4_K_M"), p), DType::F16);
  p.role = GgufTensorRole::Output, p.cols = 896;
  EXPECT_EQ(gguf_tensor_type(*find_gguf_file_type("Q4_K_M"), p), DType::Q8_0);
  EXPECT_EQ(find_gguf_file_type("q4_k_m"), nullptr);
}

// An HF directory with MCW's byte vocabulary, exported as Q8_0: every tensor reads back
// through MCW with the reported type and error, q/k rows back in HF order, the tokenizer
// with the same ids, and logits close to the source's.
TEST(GgufExport, Q8_0ReadsBackWithReportedErrors) {
  const fs::path dir = test::fresh_temp_dir();
  LlamaConfig c = test::tiny_config(4, 2);
  c.vocab_size = 258;
  const LlamaModel src = test::random_llama(c, 5);
  save_with_byte_vocab(src, dir / "hf");
  const std::string out = (dir / "m.gguf").string();
  const GgufExportReport r = export_gguf((dir / "hf").string(), out, *find_gguf_file_type("Q8_0"));

  const ModelFile mf = open_model_file(out);
  const LlamaModel back = load_llama(mf);
  std::map<std::string, const GgufExportTensor*> by_name;
  for (const GgufExportTensor& t : r.tensors) by_name[t.name] = &t;
  const GGUFFile g = read_gguf(out);
  ASSERT_EQ(g.tensors.size(), r.tensors.size());
  for (const Tensor& t : g.tensors) EXPECT_EQ(t.dtype(), by_name.at(t.name())->type) << t.name();
  EXPECT_EQ(by_name.at("blk.0.attn_q.weight")->type, DType::Q8_0);
  EXPECT_EQ(by_name.at("blk.0.attn_norm.weight")->type, DType::F32);
  // The reported error is the read-back model's, tensor by tensor (q/k un-permuted).
  EXPECT_NEAR(rel_error(back.layers[1].wq, src.layers[1].wq),
              by_name.at("blk.1.attn_q.weight")->rel_error, 1e-9);
  EXPECT_NEAR(rel_error(back.layers[0].w_down, src.layers[0].w_down),
              by_name.at("blk.0.ffn_down.weight")->rel_error, 1e-9);
  EXPECT_GT(by_name.at("blk.0.ffn_down.weight")->rel_error, 1e-4);  // Q8_0 is not exact
  EXPECT_LT(by_name.at("blk.0.ffn_down.weight")->rel_error, 1e-2);
  EXPECT_EQ(rel_error(back.layers[0].attn_norm, src.layers[0].attn_norm), 0.0);

  const auto tok_src = load_tokenizer(open_model_file((dir / "hf").string()));
  const auto tok_back = load_tokenizer(mf);
  const std::string text = "Hello, GGUF! 12345 \xc3\xa9t\xc3\xa9";
  EXPECT_EQ(tok_back->encode(text, true), tok_src->encode(text, true));
  EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(g.get_u64("general.file_type"), 7u);

  const std::vector<int32_t> ids = tok_src->encode("the quick brown fox", true);
  const auto a = test::engine_logits(src, ids), b = test::engine_logits(back, ids);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
  EXPECT_LT(worst, 0.05);
}

// A tokenizer.json trained with Llama-3's split keeps that split through the GGUF
// (tokenizer.ggml.pre = llama-bpe): digits go in threes, where GPT-2's split keeps runs.
TEST(GgufExport, Llama3SplitSurvivesAsLlamaBpe) {
  const fs::path dir = test::fresh_temp_dir();
  const char* llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  BpeTrainer trainer(llama3);
  for (int i = 0; i < 50; ++i) trainer.add_text("123456 123456 hello world 987654321 ");
  const TrainedBpe vocab = trainer.train(300);
  LlamaConfig c = test::tiny_config(4, 2);
  c.vocab_size = 320;
  const LlamaModel src = test::random_llama(c, 6);
  TokenizerFiles tok;
  tok.tokenizer_json = vocab.to_tokenizer_json().dump();
  save_llama_hf(src, (dir / "hf").string(), tok);
  const std::string out = (dir / "m.gguf").string();
  export_gguf((dir / "hf").string(), out, *find_gguf_file_type("F16"));
  EXPECT_EQ(read_gguf(out).get_string("tokenizer.ggml.pre"), "llama-bpe");
  const auto a = load_tokenizer(open_model_file((dir / "hf").string()));
  const auto b = load_tokenizer(open_model_file(out));
  // "23456": Llama-3 splits 234|56 (no merges apply), GPT-2 keeps it whole (2|3|456).
  const std::string text = "23456 hello 1234567 world";
  EXPECT_EQ(b->encode(text, false), a->encode(text, false));
}

// A GGUF's byte-level BPE vocabulary written back as tokenizer.json (what mcw compress and
// the studio's HF export put beside weights read from a GGUF): it encodes as the GGUF's
// tokenizer and the tokenizer.json the GGUF was made from do, BOS and special tokens
// included.
TEST(GgufExport, GgufVocabularyGoesBackToTokenizerJson) {
  const fs::path dir = test::fresh_temp_dir();
  const char* llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  BpeTrainer trainer(llama3);
  for (int i = 0; i < 50; ++i) trainer.add_text("123456 123456 hello world 987654321 ");
  const TrainedBpe vocab = trainer.train(300, {"<|begin_of_text|>", "<|end_of_text|>"});
  LlamaConfig c = test::tiny_config(4, 2);
  c.vocab_size = 320;
  TokenizerFiles tok;
  tok.tokenizer_json = vocab.to_tokenizer_json().dump();
  save_llama_hf(test::random_llama(c, 6), (dir / "hf").string(), tok);
  const std::string gguf = (dir / "m.gguf").string();
  export_gguf((dir / "hf").string(), gguf, *find_gguf_file_type("F16"));

  fs::create_directories(dir / "back");
  const std::vector<std::string> written =
      write_tokenizer_files(open_model_file(gguf), (dir / "back").string());
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(fs::path(written[0]).filename(), "tokenizer.json");
  EXPECT_EQ(fs::path(written[1]).filename(), "tokenizer_config.json");
  const auto config = nlohmann::json::parse(test::read_bytes(written[1]));
  EXPECT_EQ(config["bos_token"], "<|begin_of_text|>");
  EXPECT_EQ(config["eos_token"], "<|end_of_text|>");
  EXPECT_EQ(config["tokenizer_class"], "PreTrainedTokenizerFast");
  const auto original = load_tokenizer(open_model_file((dir / "hf").string()));
  const auto from_gguf = load_tokenizer(open_model_file(gguf));
  const auto back = BpeTokenizer::from_file(written[0]);
  const std::string text = "23456 hello<|end_of_text|> 1234567 world\n";
  const std::vector<int32_t> want = original->encode(text, true);
  EXPECT_EQ(from_gguf->encode(text, true), want);
  EXPECT_EQ(back->encode(text, true), want);
  ASSERT_GE(original->bos_id(), 0);
  EXPECT_EQ(want.front(), original->bos_id());
  EXPECT_EQ(back->bos_id(), original->bos_id());
  EXPECT_NE(std::find(want.begin(), want.end(), original->eos_id()), want.end());  // a special
  EXPECT_EQ(back->decode(want), from_gguf->decode(want));

  // A split MCW cannot name (llama.cpp's "tekken", say): no tokenizer.json rather than a
  // wrong one, and no error (compress and export still finish).
  GGUFFile g = read_gguf(gguf);
  for (GGUFKeyValue& kv : g.kvs)
    if (kv.key == "tokenizer.ggml.pre") kv.value = std::string("tekken");
  write_gguf((dir / "tekken.gguf").string(), g.kvs, g.tensors);
  fs::create_directories(dir / "tekken");
  EXPECT_TRUE(write_tokenizer_files(open_model_file((dir / "tekken.gguf").string()),
                                    (dir / "tekken").string())
                  .empty());
  EXPECT_FALSE(fs::exists(dir / "tekken" / "tokenizer.json"));

  // A directory's own tokenizer files are copied, nothing is made up for them.
  fs::create_directories(dir / "copy");
  const auto copied =
      write_tokenizer_files(open_model_file((dir / "hf").string()), (dir / "copy").string());
  ASSERT_EQ(copied.size(), 1u);
  EXPECT_EQ(test::read_bytes(copied[0]), test::read_bytes(dir / "hf" / "tokenizer.json"));
}

// A GGUF's SentencePiece vocabulary ("llama": Llama 2, Mistral, Phi-3) goes beside weights
// read from it as MCW's mcw_tokenizer.json: MCW reads it back to the same tokenization, and
// a GGUF exported from that directory carries the same tokenizer keys.
TEST(GgufExport, GgufSentencePieceVocabularyRoundTrips) {
  const fs::path dir = test::fresh_temp_dir();
  std::vector<std::pair<std::string, float>> pieces = {{"<unk>", 0}, {"<s>", 0}, {"</s>", 0}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    pieces.push_back({buf, 0});
  }
  for (const auto& [p, score] : std::vector<std::pair<std::string, float>>{{"\xe2\x96\x81"
                                                                            "t",
                                                                            -1},
                                                                           {"he", -2},
                                                                           {"\xe2\x96\x81"
                                                                            "the",
                                                                            -0.5f},
                                                                           {"\xe2\x96\x81"
                                                                            "a",
                                                                            -3}})
    pieces.push_back({p, score});
  fs::create_directories(dir / "l2c");
  {
    std::ofstream out(dir / "l2c" / "tokenizer.bin", std::ios::binary);
    auto i32 = [&](int32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
    i32(8);
    for (const auto& [p, score] : pieces) {
      out.write(reinterpret_cast<const char*>(&score), 4);
      i32(int32_t(p.size()));
      out.write(p.data(), std::streamsize(p.size()));
    }
  }
  LlamaConfig c = test::tiny_config(4, 4);
  c.vocab_size = int64_t(pieces.size());
  save_llama_llama2c(test::random_llama(c, 8), (dir / "l2c" / "m.bin").string());
  const std::string gguf = (dir / "m.gguf").string();
  export_gguf((dir / "l2c" / "m.bin").string(), gguf, *find_gguf_file_type("F16"));
  ASSERT_EQ(read_gguf(gguf).get_string("tokenizer.ggml.model"), "llama");

  const LlamaModel m = load_llama(open_model_file(gguf));
  save_llama_hf(m, (dir / "back").string());
  const std::vector<std::string> written =
      write_tokenizer_files(open_model_file(gguf), (dir / "back").string());
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(fs::path(written[0]).filename(), "mcw_tokenizer.json");
  const std::string text = "the the a theta";
  const auto want = load_tokenizer(open_model_file(gguf))->encode(text, true);
  EXPECT_EQ(load_tokenizer(open_model_file((dir / "back").string()))->encode(text, true), want);
  EXPECT_NE(std::find(want.begin(), want.end(), 261), want.end());  // "▁the", a merged piece

  const std::string again = (dir / "again.gguf").string();
  export_gguf((dir / "back").string(), again, *find_gguf_file_type("F16"));
  // A broken one is a one-line error naming the file.
  fs::create_directories(dir / "broken");
  save_llama_hf(m, (dir / "broken").string());
  for (const std::string& bad :
       {std::string(R"({"type": "sentencepiece", "tokens": 7})"),
        std::string(R"({"type": "sentencepiece", "tokens": ["a"], "bos": 9})")}) {
    test::write_bytes(dir / "broken" / "mcw_tokenizer.json", bad);
    try {
      load_tokenizer(open_model_file((dir / "broken").string()));
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("mcw_tokenizer.json"), std::string::npos) << e.what();
    }
  }
  const GGUFFile a = read_gguf(gguf), b = read_gguf(again);
  for (const char* key :
       {"tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_space_prefix"}) {
    ASSERT_TRUE(b.has(key)) << key;
    EXPECT_EQ(gguf_value_to_json(a.find(key)->value, 1 << 20),
              gguf_value_to_json(b.find(key)->value, 1 << 20))
        << key;
  }
}

TEST(GgufExport, RefusesWhatLlamaCppWouldTokenizeDifferently) {
  const fs::path dir = test::fresh_temp_dir();
  LlamaConfig c = test::tiny_config(4, 2);
  c.vocab_size = 300;
  const LlamaModel src = test::random_llama(c, 7);
  BpeTrainer trainer("[a-z]+| ");  // a split llama.cpp has no name for
  trainer.add_text(std::string(200, 'a') + " abc abc");
  const TrainedBpe vocab = trainer.train(280);
  TokenizerFiles tok;
  tok.tokenizer_json = vocab.to_tokenizer_json().dump();
  save_llama_hf(src, (dir / "hf").string(), tok);
  try {
    export_gguf((dir / "hf").string(), (dir / "m.gguf").string(), *find_gguf_file_type("F16"));
    FAIL() << "exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pre-tokenizer"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "m.gguf"));
}

// A compressed model directory (mcw compress's packed.safetensors beside it): 4-bit
// symmetric g32 layers are Q4_0 blocks as they are, so their codes go into the file
// unchanged and read back as the layers' own dequantize(), bit for bit; asymmetric ones
// are re-quantised, and the report says why.
TEST(GgufExport, KeepsCodesThatAreExactlyQ4_0Blocks) {
  const fs::path dir = test::fresh_temp_dir();
  LlamaConfig c = test::tiny_config(8, 4);
  c.hidden_dim = 96, c.vocab_size = 258;
  const LlamaModel base = test::random_llama(c, 8);
  const Recipe recipe = parse_recipe(
      "stages:\n"
      "  - algorithm: rtn\n    bits: 4\n    group_size: 32\n    symmetric: true\n"
      "    targets: ['*self_attn*']\n"
      "  - algorithm: rtn\n    bits: 4\n    group_size: 32\n    targets: ['*mlp*']\n",
      "gguf-codes");
  const CompressionResult r = compress_llama(base, recipe, {}, {});
  save_with_byte_vocab(r.model, dir / "m");
  std::map<std::string, const CompressedTensor*> layers;
  std::vector<const CompressedTensor*> packed;
  for (const CompressedLayer& l : r.layers) {
    layers[l.tensor.name] = &l.tensor;
    packed.push_back(&l.tensor);
  }
  write_packed_safetensors((dir / "m" / kPackedFileName).string(), packed);
  const std::string out = (dir / "m.gguf").string();
  const GgufExportReport rep = export_gguf((dir / "m").string(), out, *find_gguf_file_type("Q4_0"));

  std::map<std::string, const GgufExportTensor*> by_name;
  for (const GgufExportTensor& t : rep.tensors) by_name[t.name] = &t;
  for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
    const GgufExportTensor& t = *by_name.at("blk.1." + std::string(n) + ".weight");
    EXPECT_EQ(t.type, DType::Q4_0) << n;
    EXPECT_TRUE(t.codes_kept) << n << ": " << t.requantised_because;
  }
  const GgufExportTensor& up = *by_name.at("blk.0.ffn_up.weight");
  EXPECT_FALSE(up.codes_kept);
  EXPECT_EQ(up.requantised_because, "zero points other than 8");
  EXPECT_GT(up.rel_error, 1e-3);  // ggml's Q4_0 of the 4-bit asymmetric values
  EXPECT_TRUE(by_name.at("token_embd.weight")->requantised_because.empty());

  // Read back: the kept layers are their dequantize() exactly (q and k un-permuted).
  const LlamaModel back = load_llama(open_model_file(out));
  auto same = [&](const Tensor& got, const std::string& hf) {
    const std::vector<float> a = got.to_f32(), b = layers.at(hf)->dequantize().to_f32();
    ASSERT_EQ(a.size(), b.size()) << hf;
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
    EXPECT_EQ(differ, 0u) << hf;
  };
  same(back.layers[1].wq, "model.layers.1.self_attn.q_proj.weight");
  same(back.layers[1].wk, "model.layers.1.self_attn.k_proj.weight");
  same(back.layers[0].wv, "model.layers.0.self_attn.v_proj.weight");
  same(back.layers[0].wo, "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(by_name.at("blk.1.attn_q.weight")->rel_error, 0.0);
}

// Q4_K_M on rows of 256 values: llama.cpp's mix per tensor (output Q6_K; attn_v and
// ffn_down Q6_K in the last eighth of the layers, here layer 1 of 2; the rest Q4_K), read
// back through MCW's K-quant decoders to the reported errors, each type's error where its
// bits put it.
TEST(GgufExport, Q4_K_MMixReadsBack) {
  const fs::path dir = test::fresh_temp_dir();
  const LlamaModel src = test::random_llama(k_quant_config(), 10);
  save_with_byte_vocab(src, dir / "hf");
  const std::string out = (dir / "m.gguf").string();
  const GgufExportReport r =
      export_gguf((dir / "hf").string(), out, *find_gguf_file_type("Q4_K_M"));
  std::map<std::string, const GgufExportTensor*> by_name;
  for (const GgufExportTensor& t : r.tensors) by_name[t.name] = &t;
  EXPECT_EQ(by_name.at("output.weight")->type, DType::Q6_K);
  EXPECT_EQ(by_name.at("token_embd.weight")->type, DType::Q4_K);
  EXPECT_EQ(by_name.at("blk.0.attn_v.weight")->type, DType::Q4_K);
  EXPECT_EQ(by_name.at("blk.1.attn_v.weight")->type, DType::Q6_K);
  EXPECT_EQ(by_name.at("blk.1.ffn_down.weight")->type, DType::Q6_K);
  EXPECT_EQ(by_name.at("blk.1.ffn_up.weight")->type, DType::Q4_K);
  const GGUFFile g = read_gguf(out);
  for (const Tensor& t : g.tensors) EXPECT_EQ(t.dtype(), by_name.at(t.name())->type) << t.name();
  EXPECT_EQ(g.get_u64("general.file_type"), 15u);

  const LlamaModel back = load_llama(open_model_file(out));
  EXPECT_NEAR(rel_error(back.layers[1].wq, src.layers[1].wq),
              by_name.at("blk.1.attn_q.weight")->rel_error, 1e-9);
  EXPECT_NEAR(rel_error(back.layers[1].w_down, src.layers[1].w_down),
              by_name.at("blk.1.ffn_down.weight")->rel_error, 1e-9);
  // Gaussian rows: 4-bit K-quant error a few percent, 6-bit a quarter of that or less.
  const double q4 = by_name.at("blk.0.ffn_down.weight")->rel_error;
  const double q6 = by_name.at("blk.1.ffn_down.weight")->rel_error;
  EXPECT_GT(q4, 0.02);
  EXPECT_LT(q4, 0.15);
  EXPECT_LT(q6, q4 / 3.5);
}

// With calibration windows: the importance of layer 0's attention input is the mean square
// of the normed embeddings (computed here from the definition), and encoding with it (as
// llama-quantize --imatrix does) lowers the importance-weighted error of the weights that
// read that input against the unweighted encoding, where the norm weights make some columns
// matter up to ~100x more than others (Q4_K: by ~3 % here; the choice of each sub-block's
// scale and min is what the weights move, the codes stay the nearest ones).
TEST(GgufExport, ImportanceMatrixWeightsTheEncoding) {
  const fs::path dir = test::fresh_temp_dir();
  const LlamaConfig c = k_quant_config();
  const LlamaModel src = test::random_llama(c, 11);
  save_with_byte_vocab(src, dir / "hf");
  std::vector<std::vector<int32_t>> windows(4);
  for (size_t w = 0; w < windows.size(); ++w)
    for (int i = 0; i < 48; ++i) windows[w].push_back(int32_t((w * 131 + size_t(i) * 17) % 256));

  // Layer 0's q/k/v input: rmsnorm(embedding) · attn_norm, mean square per column.
  std::vector<double> want(size_t(c.dim), 0.0);
  const std::vector<float> emb = src.tok_embd.to_f32(), g = src.layers[0].attn_norm.to_f32();
  int64_t tokens = 0;
  for (const auto& win : windows)
    for (int32_t t : win) {
      const float* x = emb.data() + size_t(t) * size_t(c.dim);
      double ss = 0;
      for (int64_t j = 0; j < c.dim; ++j) ss += double(x[j]) * x[j];
      const double inv = 1 / std::sqrt(ss / double(c.dim) + c.rms_eps);
      for (int64_t j = 0; j < c.dim; ++j) {
        const double v = x[j] * inv * g[size_t(j)];
        want[size_t(j)] += v * v;
      }
      ++tokens;
    }
  const ImportanceMatrix imp = measure_importance(src, windows);
  const std::vector<float>& got = imp.at("model.layers.0.self_attn.k_proj.weight");
  ASSERT_EQ(int64_t(got.size()), c.dim);
  for (int64_t j = 0; j < c.dim; ++j)
    EXPECT_NEAR(got[size_t(j)], want[size_t(j)] / double(tokens),
                1e-4 * want[size_t(j)] / double(tokens) + 1e-9)
        << j;
  EXPECT_EQ(imp.count("lm_head.weight"), 0u);  // llama-imatrix's default: no output entry

  const std::string plain = (dir / "plain.gguf").string(),
                    weighted = (dir / "imatrix.gguf").string();
  export_gguf((dir / "hf").string(), plain, *find_gguf_file_type("Q4_K_M"));
  GgufExportOptions o;
  o.calibration = windows;
  const GgufExportReport r =
      export_gguf((dir / "hf").string(), weighted, *find_gguf_file_type("Q4_K_M"), o);
  std::map<std::string, const GgufExportTensor*> by_name;
  for (const GgufExportTensor& t : r.tensors) by_name[t.name] = &t;
  EXPECT_TRUE(by_name.at("blk.0.attn_k.weight")->weighted_rel_error.has_value());
  EXPECT_FALSE(by_name.at("output.weight")->weighted_rel_error.has_value());
  EXPECT_FALSE(by_name.at("token_embd.weight")->weighted_rel_error.has_value());

  const LlamaModel a = load_llama(open_model_file(plain)),
                   b = load_llama(open_model_file(weighted));
  auto weighted_error = [&](const Tensor& q, const Tensor& w) {
    const std::vector<float> x = q.to_f32(), y = w.to_f32();
    double e = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double d = double(x[i]) - y[i];
      e += got[i % size_t(c.dim)] * d * d;
    }
    return e;
  };
  for (auto m : {&LlamaLayer::wq, &LlamaLayer::wk, &LlamaLayer::wv}) {
    const Tensor& w = src.layers[0].*m;
    EXPECT_LT(weighted_error(b.layers[0].*m, w), 0.99 * weighted_error(a.layers[0].*m, w))
        << w.name();
  }
  EXPECT_NEAR(std::sqrt(weighted_error(b.layers[0].wk, src.layers[0].wk) /
                        weighted_error(src.layers[0].wk,
                                       Tensor::zeros(DType::F32, src.layers[0].wk.shape()))),
              *by_name.at("blk.0.attn_k.weight")->weighted_rel_error, 1e-6);
}

// --method gptq: every block linear is re-quantised by GPTQ on its GGUF type's grid. Layer
// 0's q/k/v input does not depend on any quantised weight, so its XᵀX is computed here from
// the definition (normed embeddings), and the output errors the report gives for the GPTQ
// blocks and for the --imatrix baseline are checked against the weights read back from this
// file and from a real --imatrix export. Every block linear's output error is lower.
TEST(GgufExport, GptqBlocksLowerTheOutputErrorOfTheImatrixExport) {
  const fs::path dir = test::fresh_temp_dir();
  const LlamaConfig c = k_quant_config();
  const LlamaModel src = test::random_llama(c, 11);
  save_with_byte_vocab(src, dir / "hf");
  std::vector<std::vector<int32_t>> windows(6);
  for (size_t w = 0; w < windows.size(); ++w)
    for (int i = 0; i < 64; ++i)
      windows[w].push_back(int32_t((w * 131 + size_t(i) * 17 + size_t(i * i)) % 256));

  const std::string imx_path = (dir / "imatrix.gguf").string(),
                    gptq_path = (dir / "gptq.gguf").string();
  GgufExportOptions o;
  o.calibration = windows;
  export_gguf((dir / "hf").string(), imx_path, *find_gguf_file_type("Q4_K_M"), o);
  o.method = GgufCalibration::Gptq;
  double last = 0;
  o.progress = [&](const ProgressEvent& e) {
    EXPECT_GE(e.fraction, last);
    last = e.fraction;
  };
  const GgufExportReport r =
      export_gguf((dir / "hf").string(), gptq_path, *find_gguf_file_type("Q4_K_M"), o);
  EXPECT_NEAR(last, 1.0, 1e-9);
  for (const auto& entry : fs::directory_iterator(dir))  // the scratch blocks are gone
    EXPECT_EQ(entry.path().filename().string().find(".mcw-export-gptq"), std::string::npos);

  std::map<std::string, const GgufExportTensor*> by_name;
  int gptq_tensors = 0;
  for (const GgufExportTensor& t : r.tensors) {
    by_name[t.name] = &t;
    if (!t.gptq_output_error) continue;
    ++gptq_tensors;
    ASSERT_TRUE(t.imatrix_output_error) << t.name;
    EXPECT_LT(*t.gptq_output_error, *t.imatrix_output_error) << t.name;
  }
  EXPECT_EQ(gptq_tensors, 7 * int(c.n_layers));  // q, k, v, o, gate, up, down of each block
  EXPECT_FALSE(by_name.at("output.weight")->gptq_output_error);
  EXPECT_FALSE(by_name.at("token_embd.weight")->gptq_output_error);

  // Layer 0's attention input, and its XᵀX.
  std::vector<double> h(size_t(c.dim * c.dim), 0.0);
  const std::vector<float> emb = src.tok_embd.to_f32(), g = src.layers[0].attn_norm.to_f32();
  std::vector<double> x(size_t(c.dim));
  for (const auto& win : windows)
    for (int32_t t : win) {
      const float* e = emb.data() + size_t(t) * size_t(c.dim);
      double ss = 0;
      for (int64_t j = 0; j < c.dim; ++j) ss += double(e[j]) * e[j];
      const double inv = 1 / std::sqrt(ss / double(c.dim) + c.rms_eps);
      for (int64_t j = 0; j < c.dim; ++j) x[size_t(j)] = e[j] * inv * g[size_t(j)];
      for (int64_t i = 0; i < c.dim; ++i)
        for (int64_t j = 0; j < c.dim; ++j) h[size_t(i * c.dim + j)] += x[size_t(i)] * x[size_t(j)];
    }
  auto output_error = [&](const Tensor& q, const Tensor& w) {
    const std::vector<float> a = q.to_f32(), b = w.to_f32();
    const int64_t rows = w.dim(0);
    double d = 0, ref = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < c.dim; ++i)
        for (int64_t j = 0; j < c.dim; ++j) {
          const size_t p = size_t(r * c.dim + i), s = size_t(r * c.dim + j);
          d += (double(a[p]) - b[p]) * h[size_t(i * c.dim + j)] * (double(a[s]) - b[s]);
          ref += double(b[p]) * h[size_t(i * c.dim + j)] * b[s];
        }
    return std::sqrt(d / ref);
  };
  const LlamaModel via_gptq = load_llama(open_model_file(gptq_path));
  const LlamaModel via_imatrix = load_llama(open_model_file(imx_path));
  // The K rows are permuted to Meta's order in the file and back by the reader: compare
  // the weights as read back, which are in HF order again.
  const Tensor &w = src.layers[0].wk, &wg = via_gptq.layers[0].wk, &wi = via_imatrix.layers[0].wk;
  const GgufExportTensor& k = *by_name.at("blk.0.attn_k.weight");
  EXPECT_NEAR(output_error(wg, w), *k.gptq_output_error, 1e-4 * *k.gptq_output_error);
  // The baseline's mean x² is summed in another order than measure_importance's, which may
  // move the weighted encoder's choice for a sub-block or two: the same to 1e-3.
  EXPECT_NEAR(output_error(wi, w), *k.imatrix_output_error, 1e-3 * *k.imatrix_output_error);
  EXPECT_NEAR(rel_error(wg, w), k.rel_error, 1e-6);
  EXPECT_LT(output_error(wg, w), 0.8 * output_error(wi, w));

  // A file already of the type goes through as it is: nothing is re-quantised again.
  const std::string again = (dir / "again.gguf").string();
  o.progress = {};
  const GgufExportReport r2 = export_gguf(gptq_path, again, *find_gguf_file_type("Q4_K_M"), o);
  for (const GgufExportTensor& t : r2.tensors) EXPECT_FALSE(t.gptq_output_error) << t.name;
  EXPECT_EQ(load_llama(open_model_file(again)).layers[1].w_down.to_f32(),
            via_gptq.layers[1].w_down.to_f32());
}

// Cancelling the GPTQ pass part-way leaves neither the file nor the scratch blocks.
TEST(GgufExport, CancelledGptqLeavesNothing) {
  const fs::path dir = test::fresh_temp_dir();
  const LlamaModel src = test::random_llama(k_quant_config(), 3);
  save_with_byte_vocab(src, dir / "hf");
  GgufExportOptions o;
  o.calibration.assign(2, std::vector<int32_t>(32, 7));
  o.method = GgufCalibration::Gptq;
  CancelToken cancel;
  o.cancel = &cancel;
  o.progress = [&](const ProgressEvent& e) {
    if (e.fraction > 0.2) cancel.cancel();
  };
  const fs::path out = dir / "m.gguf";
  EXPECT_THROW(export_gguf((dir / "hf").string(), out.string(), *find_gguf_file_type("Q4_K_M"), o),
               Cancelled);
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_EQ(entry.path().filename(), "hf") << entry.path();
}

// A cancel stops the writer within a chunk of rows, not at the end of the file: the
// export of an 8 B model's 291 tensors runs for minutes.
TEST(GgufExport, CancelStopsSoonAfterTheCancel) {
  const fs::path dir = test::fresh_temp_dir();
  LlamaConfig c = k_quant_config();
  c.dim = 1024, c.head_dim = 128, c.n_heads = 8, c.n_kv_heads = 8, c.hidden_dim = 4096;
  c.n_layers = 3;
  save_with_byte_vocab(test::random_llama(c, 4), dir / "hf");
  const GgufFileType& type = *find_gguf_file_type("Q4_K_M");
  const auto t0 = std::chrono::steady_clock::now();
  export_gguf((dir / "hf").string(), (dir / "whole.gguf").string(), type);
  const double whole = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CancelToken cancel;
  GgufExportOptions o;
  o.cancel = &cancel;
  const test::CancelLatency t = test::measure_cancel(
      cancel, [&](double s) { return s > 0.4 * whole; },
      [&] { export_gguf((dir / "hf").string(), (dir / "m.gguf").string(), type, o); });
  EXPECT_LT(t.latency, 0.04 * whole) << "a " << whole << " s export";
  EXPECT_FALSE(fs::exists(dir / "m.gguf"));
  RecordProperty("export_seconds", std::to_string(whole));
  RecordProperty("cancel_latency_seconds", std::to_string(t.latency));
}
