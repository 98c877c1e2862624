#include "engine/io/tokenizer_files.h"

#include <filesystem>

#include "engine/core/error.h"

namespace fs = std::filesystem;

namespace mcw {

namespace {

const std::vector<const char*> kHfNames = {"tokenizer.json", "tokenizer_config.json",
                                           "special_tokens_map.json", "tokenizer.model",
                                           "mcw_tokenizer.json"};

std::vector<std::string> existing(const fs::path& dir, const std::vector<const char*>& names) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const char* n : names)
    if (fs::is_regular_file(dir / n, ec)) out.push_back((dir / n).string());
  return out;
}

}  // namespace

std::vector<std::string> tokenizer_files_in(const std::string& dir) {
  std::vector<const char*> names = kHfNames;
  names.push_back("tokenizer.bin");
  return existing(dir, names);
}

std::vector<std::string> tokenizer_files_of(const ModelFile& source) {
  switch (source.format) {
    case ModelFormat::HFDirectory:
      return existing(source.path, kHfNames);
    case ModelFormat::Safetensors:
      return existing(fs::path(source.path).parent_path(), kHfNames);
    case ModelFormat::Llama2c:
      return existing(fs::path(source.path).parent_path(), {"tokenizer.bin"});
    case ModelFormat::GGUF:
    case ModelFormat::ONNX:
      break;
  }
  return {};
}

std::vector<std::string> copy_tokenizer_files(const ModelFile& source, const std::string& dir) {
  std::vector<std::string> out;
  for (const std::string& f : tokenizer_files_of(source)) {
    const fs::path to = fs::path(dir) / fs::path(f).filename();
    std::error_code ec;
    fs::copy_file(f, to, fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error(to.string(), "cannot copy the tokenizer file: " + ec.message());
    out.push_back(to.string());
  }
  return out;
}

}  // namespace mcw
