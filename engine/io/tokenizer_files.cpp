#include "engine/io/tokenizer_files.h"

#include <filesystem>

#include "engine/core/error.h"

namespace fs = std::filesystem;

namespace mcw {

std::vector<std::string> tokenizer_files_of(const ModelFile& source) {
  std::vector<const char*> names;
  fs::path dir;
  switch (source.format) {
    case ModelFormat::HFDirectory:
      dir = source.path;
      [[fallthrough]];
    case ModelFormat::Safetensors:
      if (dir.empty()) dir = fs::path(source.path).parent_path();
      names = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
               "tokenizer.model", "mcw_tokenizer.json"};
      break;
    case ModelFormat::Llama2c:
      dir = fs::path(source.path).parent_path();
      names = {"tokenizer.bin"};
      break;
    case ModelFormat::GGUF:
      break;
  }
  std::vector<std::string> out;
  std::error_code ec;
  for (const char* n : names)
    if (fs::is_regular_file(dir / n, ec)) out.push_back((dir / n).string());
  return out;
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
