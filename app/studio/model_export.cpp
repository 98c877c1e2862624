#include "app/studio/model_export.h"

#include <algorithm>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/export/packed_safetensors.h"
#include "engine/model/llama_save.h"

namespace mcw::studio {

namespace fs = std::filesystem;

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

SavedModel save_exported_model(const LlamaModel& model, const ModelFile& source,
                               const std::string& path,
                               const std::vector<const CompressedTensor*>& packed) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  SavedModel out;
  if (ext == ".gguf") {
    // f32: exactly the weights the run evaluated (block types would round them again).
    save_llama_gguf(model, path, DType::F32);
    out.kind = "model-gguf";
    out.weights_file = path;
    return out;
  }
  save_llama_hf(model, path);
  out.kind = "model-hf";
  out.weights_file = (fs::path(path) / "model.safetensors").string();
  for (const std::string& f : tokenizer_files_of(source)) {
    const fs::path to = fs::path(path) / fs::path(f).filename();
    std::error_code ec;
    fs::copy_file(f, to, fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error(to.string(), "cannot copy the tokenizer file: " + ec.message());
    out.tokenizer_files.push_back(to.string());
  }
  if (!packed.empty()) {
    out.packed_file = (fs::path(path) / kPackedFileName).string();
    write_packed_safetensors(out.packed_file, packed);
  }
  return out;
}

}  // namespace mcw::studio
