#include "engine/model/tokenizer_loader.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/core/error.h"
#include "engine/core/mapped_file.h"
#include "engine/io/gguf.h"
#include "engine/model/bpe_tokenizer.h"
#include "engine/model/bpe_trainer.h"
#include "engine/model/gguf_pre_tokenizers.h"
#include "engine/model/unicode_regex.h"
#include "engine/model/byte_tokenizer.h"
#include "engine/model/sentencepiece_tokenizer.h"

namespace mcw {

namespace fs = std::filesystem;

static std::unique_ptr<Tokenizer> from_hf_directory(const std::string& dir, int64_t vocab_size) {
  const fs::path tj = fs::path(dir) / "tokenizer.json";
  if (fs::exists(tj)) return BpeTokenizer::from_file(tj.string());
  const fs::path mt = fs::path(dir) / "mcw_tokenizer.json";
  if (fs::exists(mt)) {
    std::ifstream in(mt);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw Error(mt.string(), "not a JSON object");
    if (j.value("type", "") != "byte")
      throw Error(mt.string(), "key 'type' must be \"byte\"");
    return std::make_unique<ByteTokenizer>(j.value("bos", true), j.value("eos", true));
  }
  // A llama2.c vocabulary copied beside the weights (MCW's exports of llama2.c models).
  if (const fs::path tb = fs::path(dir) / "tokenizer.bin"; fs::exists(tb))
    return read_llama2c_tokenizer(tb.string(), vocab_size);
  throw Error(dir, "no tokenizer.json (or mcw_tokenizer.json, tokenizer.bin) in the model directory");
}

static std::unique_ptr<Tokenizer> from_gguf(const std::string& path) {
  const GGUFFile g = read_gguf(path);
  const std::string model = g.get_string("tokenizer.ggml.model", "");
  if (model.empty()) throw Error(path, "the file has no tokenizer (tokenizer.ggml.model is missing)");
  const auto& tokens = g.get_string_array("tokenizer.ggml.tokens");
  std::vector<int32_t> types;
  if (g.has("tokenizer.ggml.token_type"))
    for (int64_t t : g.get_int_array("tokenizer.ggml.token_type")) types.push_back(int32_t(t));
  auto id = [&](const char* key) { return int32_t(g.get_i64(key, -1)); };
  if (model == "llama") {
    SentencePieceVocab v;
    v.tokens = tokens;
    if (g.has("tokenizer.ggml.scores")) v.scores = g.get_float_array("tokenizer.ggml.scores");
    v.types = std::move(types);
    v.bos_id = id("tokenizer.ggml.bos_token_id");
    v.eos_id = id("tokenizer.ggml.eos_token_id");
    v.unk_id = id("tokenizer.ggml.unknown_token_id");
    v.add_dummy_prefix = g.get_bool("tokenizer.ggml.add_space_prefix", true);
    return std::make_unique<SentencePieceTokenizer>(std::move(v), path);
  }
  if (model == "gpt2") {
    // Rebuild the tokenizer.json this vocabulary came from.
    nlohmann::json doc, vocab = nlohmann::json::object(), added = nlohmann::json::array();
    for (size_t i = 0; i < tokens.size(); ++i) {
      vocab[tokens[i]] = i;
      const int32_t t = i < types.size() ? types[i] : 1;
      if (t == int32_t(PieceType::Control) || t == int32_t(PieceType::UserDefined))
        added.push_back({{"id", i}, {"content", tokens[i]}, {"special", t == 3}});
    }
    doc["model"] = {{"type", "BPE"}, {"vocab", vocab},
                    {"merges", g.get_string_array("tokenizer.ggml.merges")}};
    doc["added_tokens"] = added;
    // llama.cpp names the split in tokenizer.ggml.pre; "default" (and a file without the
    // key) is read as GPT-2's split, as MCW always did.
    const std::string pre = g.get_string("tokenizer.ggml.pre", "default");
    const char* pattern = pre == "default" ? gpt2_split_pattern() : gguf_pre_tokenizer_pattern(pre);
    if (!pattern)
      throw Error(path, "tokenizer.ggml.pre '" + pre + "' is not supported (default, " +
                            gguf_pre_tokenizer_names() + " are)");
    doc["pre_tokenizer"] = BpeTrainer::pre_tokenizer_json(pattern);
    doc["decoder"] = {{"type", "ByteLevel"}};
    BpeTokenizerOptions opt;
    auto token_at = [&](int32_t i) {
      return i >= 0 && size_t(i) < tokens.size() ? tokens[size_t(i)] : std::string();
    };
    opt.bos_token = token_at(id("tokenizer.ggml.bos_token_id"));
    opt.eos_token = token_at(id("tokenizer.ggml.eos_token_id"));
    return std::make_unique<BpeTokenizer>(doc, path, opt);
  }
  throw Error(path, "tokenizer.ggml.model '" + model + "' is not supported (llama and gpt2 are)");
}

SentencePieceVocab read_llama2c_vocab(const std::string& path, int64_t vocab_size) {
  const auto f = MappedFile::open(path);
  const auto* p = reinterpret_cast<const unsigned char*>(f->data());
  const size_t n = f->size();
  size_t at = 4;  // skip max_token_length
  if (n < 4) throw Error(path, "too short for a llama2.c tokenizer", 0);
  SentencePieceVocab v;
  for (int64_t i = 0; i < vocab_size; ++i) {
    float score;
    int32_t len;
    if (n - at < 8) throw Error(path, "truncated at token " + std::to_string(i), int64_t(at));
    std::memcpy(&score, p + at, 4);
    std::memcpy(&len, p + at + 4, 4);
    at += 8;
    if (len < 0 || size_t(len) > n - at)
      throw Error(path, "token " + std::to_string(i) + " has length " + std::to_string(len) +
                            ", beyond the end of the file", int64_t(at - 4));
    std::string piece(reinterpret_cast<const char*>(p + at), size_t(len));
    at += size_t(len);
    // llama2.c's export: 0 <unk>, 1 <s>, 2 </s>, then <0xXX> byte pieces, then the rest.
    PieceType t = PieceType::Normal;
    if (i == 0) t = PieceType::Unknown;
    else if (i <= 2) t = PieceType::Control;
    else if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece[5] == '>') t = PieceType::Byte;
    v.tokens.push_back(std::move(piece));
    v.scores.push_back(score);
    v.types.push_back(int32_t(t));
  }
  v.unk_id = 0, v.bos_id = 1, v.eos_id = 2;
  return v;
}

std::unique_ptr<Tokenizer> read_llama2c_tokenizer(const std::string& path, int64_t vocab_size) {
  return std::make_unique<SentencePieceTokenizer>(read_llama2c_vocab(path, vocab_size), path);
}

std::unique_ptr<Tokenizer> load_tokenizer(const ModelFile& m) {
  switch (m.format) {
    case ModelFormat::HFDirectory:
      return from_hf_directory(m.path, m.hparams.value("vocab_size", int64_t(0)));
    case ModelFormat::GGUF: return from_gguf(m.path);
    case ModelFormat::Llama2c: {
      const fs::path tb = fs::path(m.path).parent_path() / "tokenizer.bin";
      if (!fs::exists(tb)) throw Error(m.path, "no tokenizer.bin beside the llama2.c checkpoint");
      return read_llama2c_tokenizer(tb.string(), m.hparams.value("vocab_size", int64_t(0)));
    }
    case ModelFormat::Safetensors: break;
  }
  throw Error(m.path, "a bare safetensors file has no tokenizer: open its model directory");
}

}  // namespace mcw
