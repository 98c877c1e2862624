#include "engine/io/hf_directory.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/mapped_file.h"
#include "engine/io/json_text.h"
#include "engine/io/safetensors.h"
#include "engine/io/compressed_tensors.h"
#include "engine/io/quantized_checkpoint.h"

namespace mcw {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr const char* kIndexName = "model.safetensors.index.json";

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);  // follows symlinks, as the Hugging Face cache uses them
}

Json read_json_file(const fs::path& p, int max_depth) {
  const std::string path = p.string();
  const auto file = MappedFile::open(path);
  const std::string_view text(reinterpret_cast<const char*>(file->data()), file->size());
  JsonTextOptions options;
  options.max_depth = max_depth;
  options.what = p.filename().string();
  return parse_json_text(text, path, 0, options);
}

// Shard names are relative paths inside the directory; the check is on the text alone, so
// a symlinked shard (as in the Hugging Face cache) is still accepted.
void check_shard_name(const std::string& shard, const std::string& index_path) {
  const fs::path p(shard);
  bool escapes = shard.empty() || p.is_absolute() || p.has_root_name() || p.has_root_directory();
  for (const fs::path& part : p)
    if (part == "..") escapes = true;
  if (escapes)
    throw Error(index_path, "shard file name '" + printable(shard) +
                                "' must be a relative path inside the model directory");
}

void append_shard(ModelFile& model, SafetensorsFile&& shard) {
  for (const auto& [key, value] : shard.metadata) model.metadata.emplace(key, value);
  for (Tensor& t : shard.tensors) model.tensors.push_back(std::move(t));
}

void read_sharded(ModelFile& model, const fs::path& dir, const fs::path& index_file) {
  const std::string index_path = index_file.string();
  const Json index = read_json_file(index_file, 16);
  if (!index.is_object())
    throw Error(index_path, std::string("is a JSON ") + index.type_name() +
                                ", expected an object with a weight_map");
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object())
    throw Error(index_path, "missing 'weight_map' object (tensor name -> shard file)");

  // Shard file -> tensors the index places in it; std::map sorts shards by name, which
  // is the order of the numbered model-0000k-of-0000n files.
  std::map<std::string, std::vector<std::string>> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string())
      throw Error(index_path, "weight_map entry for tensor '" + printable(it.key()) + "' is a " +
                                  it.value().type_name() + ", expected a shard file name");
    const std::string& shard = it.value().get_ref<const std::string&>();
    check_shard_name(shard, index_path);
    shards[shard].push_back(it.key());
  }
  if (shards.empty()) throw Error(index_path, "weight_map lists no tensors");

  std::map<std::string, std::string> shard_of_tensor;  // catches a name in two shards
  for (const auto& [shard, listed] : shards) {
    const fs::path shard_file = dir / shard;
    const std::string shard_path = shard_file.string();
    if (!is_file(shard_file))
      throw Error(shard_path, "shard named in " + std::string(kIndexName) + " does not exist");
    SafetensorsFile st = read_safetensors(shard_path);
    std::set<std::string_view> present;
    for (const Tensor& t : st.tensors) {
      present.insert(t.name());
      auto [pos, fresh] = shard_of_tensor.emplace(t.name(), shard);
      if (!fresh)
        throw Error(shard_path, "tensor '" + printable(t.name()) + "' is also in shard '" +
                                    printable(pos->second) + "'");
    }
    for (const std::string& name : listed)
      if (!present.count(name))
        throw Error(shard_path, "tensor '" + printable(name) + "' is listed for this shard in " +
                                    std::string(kIndexName) + " but is not in it");
    append_shard(model, std::move(st));
  }
}

void read_unsharded(ModelFile& model, const fs::path& dir) {
  fs::path weights = dir / "model.safetensors";
  if (!is_file(weights)) {
    std::vector<fs::path> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".safetensors" && is_file(e.path())) found.push_back(e.path());
    if (ec) throw Error(dir.string(), "cannot list directory: " + ec.message());
    if (found.size() != 1) {
      std::string msg =
          found.empty()
              ? "no model.safetensors, " + std::string(kIndexName) + " or other .safetensors file"
              : std::to_string(found.size()) + " .safetensors files but no " +
                    std::string(kIndexName) + " to say which hold the model";
      if (found.empty() && is_file(dir / "pytorch_model.bin"))
        msg += " (pytorch_model.bin is not read: convert it to safetensors)";
      throw Error(dir.string(), msg);
    }
    weights = found.front();
  }
  append_shard(model, read_safetensors(weights.string()));
}

}  // namespace

ModelFile read_hf_directory(const std::string& dir_name) {
  const fs::path dir(dir_name);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir_name, "not a directory");

  ModelFile model;
  model.format = ModelFormat::HFDirectory;
  model.path = dir_name;

  const fs::path config_file = dir / "config.json";
  if (!is_file(config_file))
    throw Error(config_file.string(), "missing: a Hugging Face model directory needs config.json");
  // Configs nest a few levels (rope_scaling, text_config, quantization_config, ...).
  Json config = read_json_file(config_file, 64);
  if (!config.is_object())
    throw Error(config_file.string(),
                std::string("is a JSON ") + config.type_name() + ", expected an object");
  if (auto t = config.find("model_type"); t != config.end() && t->is_string()) {
    model.architecture = t->get<std::string>();
  } else if (auto a = config.find("architectures");
             a != config.end() && a->is_array() && !a->empty() && a->front().is_string()) {
    model.architecture = a->front().get<std::string>();
  }
  model.hparams = std::move(config);

  const fs::path index_file = dir / kIndexName;
  if (is_file(index_file))
    read_sharded(model, dir, index_file);
  else
    read_unsharded(model, dir);
  if (const auto* ct = compressed_tensors_config(model.hparams))
    present_compressed_tensors(model, *ct, config_file.string());
  else if (const auto q = quantized_checkpoint_config(model.hparams, config_file.string()))
    present_quantized_layers(model, *q);
  return model;
}

}  // namespace mcw
