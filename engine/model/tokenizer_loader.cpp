#include "engine/model/tokenizer_loader.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/core/error.h"
#include "engine/core/mapped_file.h"
#include "engine/io/atomic_file.h"
#include "engine/io/gguf.h"
#include "engine/io/tokenizer_files.h"
#include "engine/model/bpe_tokenizer.h"
#include "engine/model/bpe_trainer.h"
#include "engine/model/byte_tokenizer.h"
#include "engine/model/gguf_pre_tokenizers.h"
#include "engine/model/sentencepiece_tokenizer.h"
#include "engine/model/unicode_regex.h"

namespace mcw {

namespace fs = std::filesystem;

// A GGUF's SentencePiece ("llama") vocabulary.
static SentencePieceVocab gguf_sentencepiece_vocab(const GGUFFile& g) {
  auto id = [&](const char* key) { return int32_t(g.get_i64(key, -1)); };
  SentencePieceVocab v;
  v.tokens = g.get_string_array("tokenizer.ggml.tokens");
  if (g.has("tokenizer.ggml.scores")) v.scores = g.get_float_array("tokenizer.ggml.scores");
  if (g.has("tokenizer.ggml.token_type"))
    for (int64_t t : g.get_int_array("tokenizer.ggml.token_type")) v.types.push_back(int32_t(t));
  v.bos_id = id("tokenizer.ggml.bos_token_id");
  v.eos_id = id("tokenizer.ggml.eos_token_id");
  v.unk_id = id("tokenizer.ggml.unknown_token_id");
  v.add_dummy_prefix = g.get_bool("tokenizer.ggml.add_space_prefix", true);
  return v;
}

SentencePieceVocab sentencepiece_vocab_from_json(const nlohmann::json& j, const std::string& path) {
  try {
    SentencePieceVocab v;
    v.tokens = j.at("tokens").get<std::vector<std::string>>();
    v.scores = j.value("scores", std::vector<float>{});
    v.types = j.value("types", std::vector<int32_t>{});
    v.bos_id = j.value("bos", int32_t(-1)), v.eos_id = j.value("eos", int32_t(-1));
    v.unk_id = j.value("unk", int32_t(-1));
    v.add_dummy_prefix = j.value("add_space_prefix", true);
    return v;  // the tokenizer's constructor checks sizes, ids and pieces
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("not a SentencePiece vocabulary: ") + e.what());
  }
}

static nlohmann::json sentencepiece_vocab_json(const SentencePieceVocab& v) {
  return {{"type", "sentencepiece"}, {"tokens", v.tokens},
          {"scores", v.scores},      {"types", v.types},
          {"bos", v.bos_id},         {"eos", v.eos_id},
          {"unk", v.unk_id},         {"add_space_prefix", v.add_dummy_prefix}};
}

static std::unique_ptr<Tokenizer> from_hf_directory(const std::string& dir, int64_t vocab_size) {
  const fs::path tj = fs::path(dir) / "tokenizer.json";
  if (fs::exists(tj)) return BpeTokenizer::from_file(tj.string());
  const fs::path mt = fs::path(dir) / "mcw_tokenizer.json";
  if (fs::exists(mt)) {
    std::ifstream in(mt);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(mt.string(), "not a JSON object");
    if (j.value("type", "") == "sentencepiece")
      return std::make_unique<SentencePieceTokenizer>(sentencepiece_vocab_from_json(j, mt.string()),
                                                      mt.string());
    if (j.value("type", "") != "byte")
      throw Error(mt.string(), "key 'type' must be \"byte\" or \"sentencepiece\"");
    return std::make_unique<ByteTokenizer>(j.value("bos", true), j.value("eos", true));
  }
  // A llama2.c vocabulary copied beside the weights (MCW's exports of llama2.c models).
  if (const fs::path tb = fs::path(dir) / "tokenizer.bin"; fs::exists(tb))
    return read_llama2c_tokenizer(tb.string(), vocab_size);
  throw Error(dir,
              "no tokenizer.json (or mcw_tokenizer.json, tokenizer.bin) in the model directory");
}

static std::unique_ptr<Tokenizer> from_gguf(const std::string& path) {
  const GGUFFile g = read_gguf(path);
  const std::string model = g.get_string("tokenizer.ggml.model", "");
  if (model.empty())
    throw Error(path, "the file has no tokenizer (tokenizer.ggml.model is missing)");
  if (model == "llama")
    return std::make_unique<SentencePieceTokenizer>(gguf_sentencepiece_vocab(g), path);
  if (model == "gpt2") {
    const auto& tokens = g.get_string_array("tokenizer.ggml.tokens");
    auto id = [&](const char* key) { return int32_t(g.get_i64(key, -1)); };
    BpeTokenizerOptions opt;
    auto token_at = [&](int32_t i) {
      return i >= 0 && size_t(i) < tokens.size() ? tokens[size_t(i)] : std::string();
    };
    opt.bos_token = token_at(id("tokenizer.ggml.bos_token_id"));
    opt.eos_token = token_at(id("tokenizer.ggml.eos_token_id"));
    return std::make_unique<BpeTokenizer>(*gguf_bpe_tokenizer_json(g, path), path, opt);
  }
  throw Error(path, "tokenizer.ggml.model '" + model + "' is not supported (llama and gpt2 are)");
}

std::optional<nlohmann::json> gguf_bpe_tokenizer_json(const GGUFFile& g, const std::string& path) {
  // Not ordered_json: its keys are a list searched on every insert, which for a 128 k-token
  // vocabulary takes tens of seconds.
  using Json = nlohmann::json;
  if (g.get_string("tokenizer.ggml.model", "") != "gpt2") return std::nullopt;
  const auto& tokens = g.get_string_array("tokenizer.ggml.tokens");
  std::vector<int64_t> types;
  if (g.has("tokenizer.ggml.token_type")) types = g.get_int_array("tokenizer.ggml.token_type");
  // llama.cpp names the split in tokenizer.ggml.pre; "default" (and a file without the
  // key) is read as GPT-2's split, as MCW always did.
  const std::string pre = g.get_string("tokenizer.ggml.pre", "default");
  const char* pattern = pre == "default" ? gpt2_split_pattern() : gguf_pre_tokenizer_pattern(pre);
  if (!pattern)
    throw Error(path, "tokenizer.ggml.pre '" + pre + "' is not supported (default, " +
                          gguf_pre_tokenizer_names() + " are)");
  Json vocab = Json::object(), added = Json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    vocab[tokens[i]] = i;
    const int64_t t = i < types.size() ? types[i] : 1;
    if (t == int64_t(PieceType::Control) || t == int64_t(PieceType::UserDefined))
      added.push_back({{"id", i},
                       {"content", tokens[i]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", t != int64_t(PieceType::Control)},
                       {"special", t == int64_t(PieceType::Control)}});
  }
  // BOS as HF's Llama 3 / Qwen files add it: a template that starts with it.
  Json post = nullptr;
  const int64_t bos = g.get_i64("tokenizer.ggml.bos_token_id", -1);
  if (bos >= 0 && size_t(bos) < tokens.size() && g.get_bool("tokenizer.ggml.add_bos_token", true)) {
    const std::string& b = tokens[size_t(bos)];
    const Json first = {{"SpecialToken", {{"id", b}, {"type_id", 0}}}};
    post = {{"type", "TemplateProcessing"},
            {"single", {first, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair",
             {first,
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
              {{"SpecialToken", {{"id", b}, {"type_id", 1}}}},
              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens", {{b, {{"id", b}, {"ids", {bos}}, {"tokens", {b}}}}}}};
  }
  return byte_level_bpe_json<Json>(std::move(vocab), g.get_string_array("tokenizer.ggml.merges"),
                                   std::move(added), pattern, std::move(post));
}

std::vector<std::string> write_tokenizer_files(const ModelFile& source, const std::string& dir) {
  std::vector<std::string> out = copy_tokenizer_files(source, dir);
  if (source.format != ModelFormat::GGUF) return out;
  const GGUFFile g = read_gguf(source.path);
  if (g.get_string("tokenizer.ggml.model", "") == "llama") {
    // No HF file stands for it here: MCW's own, which MCW reads back and exports to GGUF.
    const std::string path = (fs::path(dir) / "mcw_tokenizer.json").string();
    write_file_atomically(path,
                          sentencepiece_vocab_json(gguf_sentencepiece_vocab(g)).dump() + "\n");
    out.push_back(path);
    return out;
  }
  std::optional<nlohmann::json> doc;
  try {
    doc = gguf_bpe_tokenizer_json(g, source.path);
  } catch (const Error&) {
    return out;  // a pre-tokenizer MCW cannot name as a split: no file, rather than a wrong one
  }
  if (!doc) return out;
  const std::string path = (fs::path(dir) / "tokenizer.json").string();
  write_file_atomically(path, doc->dump(1) + "\n");
  out.push_back(path);
  // What transformers reads beside it: the special tokens by name, whether BOS is added,
  // and the chat template the GGUF carries.
  const auto& tokens = g.get_string_array("tokenizer.ggml.tokens");
  nlohmann::ordered_json config = {
      {"tokenizer_class", "PreTrainedTokenizerFast"},
      {"add_bos_token", g.get_bool("tokenizer.ggml.add_bos_token", true)},
      {"add_eos_token", g.get_bool("tokenizer.ggml.add_eos_token", false)}};
  for (const auto& [key, name] : {std::pair{"tokenizer.ggml.bos_token_id", "bos_token"},
                                  std::pair{"tokenizer.ggml.eos_token_id", "eos_token"},
                                  std::pair{"tokenizer.ggml.padding_token_id", "pad_token"}})
    if (const int64_t id = g.get_i64(key, -1); id >= 0 && size_t(id) < tokens.size())
      config[name] = tokens[size_t(id)];
  if (g.has("tokenizer.chat_template"))
    config["chat_template"] = g.get_string("tokenizer.chat_template");
  const std::string config_path = (fs::path(dir) / "tokenizer_config.json").string();
  write_file_atomically(config_path, config.dump(2) + "\n");
  out.push_back(config_path);
  return out;
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
      throw Error(path,
                  "token " + std::to_string(i) + " has length " + std::to_string(len) +
                      ", beyond the end of the file",
                  int64_t(at - 4));
    std::string piece(reinterpret_cast<const char*>(p + at), size_t(len));
    at += size_t(len);
    // llama2.c's export: 0 <unk>, 1 <s>, 2 </s>, then <0xXX> byte pieces, then the rest.
    PieceType t = PieceType::Normal;
    if (i == 0)
      t = PieceType::Unknown;
    else if (i <= 2)
      t = PieceType::Control;
    else if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece[5] == '>')
      t = PieceType::Byte;
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
    case ModelFormat::GGUF:
      return from_gguf(m.path);
    case ModelFormat::Llama2c: {
      const fs::path tb = fs::path(m.path).parent_path() / "tokenizer.bin";
      if (!fs::exists(tb)) throw Error(m.path, "no tokenizer.bin beside the llama2.c checkpoint");
      return read_llama2c_tokenizer(tb.string(), m.hparams.value("vocab_size", int64_t(0)));
    }
    case ModelFormat::Safetensors:
      break;
    case ModelFormat::ONNX:
      throw Error(m.path, "an ONNX graph has no tokenizer");
  }
  throw Error(m.path, "a bare safetensors file has no tokenizer: open its model directory");
}

}  // namespace mcw
