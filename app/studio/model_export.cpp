#include "app/studio/model_export.h"

#include <algorithm>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/tokenizer_files.h"
#include "engine/model/llama_save.h"
#include "engine/model/tokenizer_loader.h"

namespace mcw::studio {

namespace fs = std::filesystem;

bool is_gguf_path(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".gguf";
}

SavedModel describe_hf_export(const ModelFile& source, const std::string& path) {
  SavedModel out;
  out.kind = "model-hf";
  const fs::path index = fs::path(path) / "model.safetensors.index.json";
  out.weights_file = fs::exists(index) ? index.string() : (fs::path(path) / "model.safetensors").string();
  for (const std::string& f : tokenizer_files_of(source))
    if (const fs::path to = fs::path(path) / fs::path(f).filename(); fs::exists(to)) out.tokenizer_files.push_back(to.string());
  if (const fs::path tj = fs::path(path) / "tokenizer.json";  // written from a GGUF's vocabulary
      source.format == ModelFormat::GGUF && fs::exists(tj))
    out.tokenizer_files.push_back(tj.string());
  if (const fs::path p = fs::path(path) / kPackedFileName; fs::exists(p)) out.packed_file = p.string();
  return out;
}

SavedModel save_exported_model(const LlamaModel& model, const ModelFile& source,
                               const std::string& path,
                               const std::vector<const CompressedTensor*>& packed) {
  save_llama_hf(model, path);
  write_tokenizer_files(source, path);
  if (!packed.empty()) write_packed_safetensors((fs::path(path) / kPackedFileName).string(), packed);
  return describe_hf_export(source, path);
}

}  // namespace mcw::studio
