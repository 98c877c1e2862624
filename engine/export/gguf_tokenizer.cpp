#include "engine/export/gguf_tokenizer.h"

#include <filesystem>

#include "engine/core/error.h"
#include "engine/core/mapped_file.h"
#include "engine/io/json_text.h"
#include "engine/model/byte_tokenizer.h"
#include "engine/model/gguf_pre_tokenizers.h"
#include "engine/model/sentencepiece_tokenizer.h"
#include "engine/model/tokenizer_loader.h"
#include "engine/model/unicode_regex.h"

namespace mcw {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using Kvs = std::vector<GGUFKeyValue>;

void add_common(Kvs& kv, const Tokenizer& tok, int32_t unk) {
  if (tok.bos_id() >= 0) kv.push_back({"tokenizer.ggml.bos_token_id", uint32_t(tok.bos_id())});
  if (tok.eos_id() >= 0) kv.push_back({"tokenizer.ggml.eos_token_id", uint32_t(tok.eos_id())});
  if (unk >= 0) kv.push_back({"tokenizer.ggml.unknown_token_id", uint32_t(unk)});
  kv.push_back({"tokenizer.ggml.add_bos_token", tok.bos_id() >= 0});
  kv.push_back({"tokenizer.ggml.add_eos_token", false});
}

// The split a byte-level tokenizer.json applies, as a tokenizer.ggml.pre name.
std::string pre_name(const Json& pre, const std::string& path) {
  std::string pattern;
  if (pre.value("type", "") == "ByteLevel" && pre.value("use_regex", true)) {
    pattern = gpt2_split_pattern();
  } else if (pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
             pre["pretokenizers"].is_array() && pre["pretokenizers"].size() == 2) {
    const Json& split = pre["pretokenizers"][0];
    const Json& bytes = pre["pretokenizers"][1];
    if (split.value("type", "") == "Split" && split.contains("pattern") &&
        split["pattern"].is_object() && split["pattern"].contains("Regex") &&
        split["pattern"]["Regex"].is_string() && bytes.value("type", "") == "ByteLevel" &&
        !bytes.value("use_regex", true))
      pattern = split["pattern"]["Regex"].get<std::string>();
  }
  const std::string_view name = gguf_pre_tokenizer_name(pattern);
  if (name.empty())
    throw Error(path,
                "its pre-tokenizer has no llama.cpp name (GGUF export knows the splits "
                "of " +
                    std::string(gguf_pre_tokenizer_names()) +
                    "), so llama.cpp would tokenize differently");
  return std::string(name);
}

std::string merge_text(const Json& m, const std::string& path) {
  if (m.is_string()) return m.get<std::string>();
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return m[0].get<std::string>() + " " + m[1].get<std::string>();
  throw Error(path, "a merge is neither \"a b\" nor [\"a\", \"b\"]");
}

// A byte-level BPE tokenizer.json document as the "gpt2" tokenizer model.
Kvs from_bpe_json(const Json& doc, const std::string& path, const Tokenizer& tok,
                  int64_t vocab_rows) {
  if (!doc.contains("model") || !doc["model"].is_object() ||
      doc["model"].value("type", "") != "BPE" || !doc["model"].contains("vocab") ||
      !doc["model"]["vocab"].is_object())
    throw Error(path, "GGUF export needs a BPE tokenizer.json with model.vocab");
  const bool byte_level = doc.contains("decoder") && doc["decoder"].is_object() &&
                          doc["decoder"].value("type", "") == "ByteLevel";
  if (!byte_level || doc["model"].value("byte_fallback", false))
    throw Error(path,
                "a SentencePiece-style tokenizer.json (no ByteLevel decoder, or "
                "byte_fallback); GGUF export takes byte-level BPE tokenizers so far");
  const int64_t n = std::max<int64_t>(vocab_rows, tok.vocab_size());
  if (tok.vocab_size() > vocab_rows)
    throw Error(path, "the tokenizer has " + std::to_string(tok.vocab_size()) +
                          " tokens but the model only " + std::to_string(vocab_rows) +
                          " embeddings");
  std::vector<std::string> tokens(static_cast<size_t>(n));
  std::vector<int32_t> types(static_cast<size_t>(n), int32_t(PieceType::Unused));
  std::vector<bool> seen(static_cast<size_t>(n), false);
  auto put = [&](int64_t id, const std::string& text, PieceType type) {
    if (id < 0 || id >= n)
      throw Error(path,
                  "token '" + text + "' has id " + std::to_string(id) + " outside the vocabulary");
    tokens[size_t(id)] = text, types[size_t(id)] = int32_t(type), seen[size_t(id)] = true;
  };
  for (const auto& [text, id] : doc["model"]["vocab"].items())
    put(id.is_number_integer() ? id.get<int64_t>() : -1, text, PieceType::Normal);
  if (doc.contains("added_tokens") && doc["added_tokens"].is_array())
    for (const Json& a : doc["added_tokens"])
      put(a.value("id", int64_t(-1)), a.value("content", ""),
          a.value("special", false) ? PieceType::Control : PieceType::UserDefined);
  for (int64_t i = 0; i < n; ++i)
    if (!seen[size_t(i)]) tokens[size_t(i)] = "[PAD" + std::to_string(i) + "]";
  std::vector<std::string> merges;
  if (doc["model"].contains("merges") && doc["model"]["merges"].is_array())
    for (const Json& m : doc["model"]["merges"]) merges.push_back(merge_text(m, path));
  const Json pre = doc.contains("pre_tokenizer") ? doc["pre_tokenizer"] : Json::object();

  Kvs kv;
  kv.push_back({"tokenizer.ggml.model", std::string("gpt2")});
  // Without merges every byte is its own token whatever the split, so any name will do.
  kv.push_back({"tokenizer.ggml.pre", merges.empty() ? std::string("gpt-2") : pre_name(pre, path)});
  kv.push_back({"tokenizer.ggml.tokens", GGUFValue::array(std::move(tokens))});
  kv.push_back({"tokenizer.ggml.token_type", GGUFValue::array(std::move(types))});
  kv.push_back({"tokenizer.ggml.merges", GGUFValue::array(std::move(merges))});
  add_common(kv, tok, -1);
  return kv;
}

Kvs from_sentencepiece(SentencePieceVocab v, const Tokenizer& tok) {
  Kvs kv;
  kv.push_back({"tokenizer.ggml.model", std::string("llama")});
  kv.push_back({"tokenizer.ggml.tokens", GGUFValue::array(std::move(v.tokens))});
  kv.push_back({"tokenizer.ggml.scores", GGUFValue::array(std::move(v.scores))});
  kv.push_back({"tokenizer.ggml.token_type", GGUFValue::array(std::move(v.types))});
  kv.push_back({"tokenizer.ggml.add_space_prefix", v.add_dummy_prefix});
  add_common(kv, tok, v.unk_id);
  return kv;
}

Json read_json(const std::string& path) {
  const auto f = MappedFile::open(path);
  return parse_json_text({reinterpret_cast<const char*>(f->data()), f->size()}, path, 0, {});
}

}  // namespace

std::vector<GGUFKeyValue> gguf_tokenizer_kvs(const ModelFile& source, int64_t vocab_rows) {
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(source);
  switch (source.format) {
    case ModelFormat::GGUF: {
      Kvs kv;
      for (const GGUFKeyValue& k : read_gguf(source.path).kvs)
        if (k.key.rfind("tokenizer.", 0) == 0) kv.push_back({k.key, k.value});
      return kv;
    }
    case ModelFormat::Llama2c: {
      const fs::path tb = fs::path(source.path).parent_path() / "tokenizer.bin";
      return from_sentencepiece(read_llama2c_vocab(tb.string(), tok->vocab_size()), *tok);
    }
    case ModelFormat::HFDirectory: {
      const fs::path tj = fs::path(source.path) / "tokenizer.json";
      if (fs::exists(tj))
        return from_bpe_json(read_json(tj.string()), tj.string(), *tok, vocab_rows);
      if (const fs::path tb = fs::path(source.path) / "tokenizer.bin"; fs::exists(tb))
        return from_sentencepiece(read_llama2c_vocab(tb.string(), tok->vocab_size()), *tok);
      const std::string mt = (fs::path(source.path) / "mcw_tokenizer.json").string();
      if (const Json j = read_json(mt); j.value("type", "") == "sentencepiece")
        return from_sentencepiece(sentencepiece_vocab_from_json(nlohmann::json(j), mt), *tok);
      // mcw_tokenizer.json's byte vocabulary is a merge-less byte-level BPE.
      Json doc = byte_tokenizer_json();
      if (tok->bos_id() >= 0)
        doc["added_tokens"].push_back({{"id", tok->bos_id()},
                                       {"content", tok->token_to_piece(tok->bos_id())},
                                       {"special", true}});
      if (tok->eos_id() >= 0)
        doc["added_tokens"].push_back({{"id", tok->eos_id()},
                                       {"content", tok->token_to_piece(tok->eos_id())},
                                       {"special", true}});
      return from_bpe_json(doc, mt, *tok, vocab_rows);
    }
    case ModelFormat::Safetensors:
      break;
    case ModelFormat::ONNX:
      throw Error(source.path, "an ONNX graph has no tokenizer");
  }
  throw Error(source.path, "a bare safetensors file has no tokenizer: export its model directory");
}

}  // namespace mcw
