#include "engine/io/model_file.h"

#include <cstring>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/core/mapped_file.h"
#include "engine/io/gguf.h"
#include "engine/io/hf_directory.h"
#include "engine/io/llama2c.h"
#include "engine/io/onnx.h"
#include "engine/io/safetensors.h"

namespace mcw {

const char* model_format_name(ModelFormat f) {
  switch (f) {
    case ModelFormat::Safetensors: return "safetensors";
    case ModelFormat::HFDirectory: return "hf-directory";
    case ModelFormat::GGUF: return "gguf";
    case ModelFormat::Llama2c: return "llama2.c";
    case ModelFormat::ONNX:
      return "onnx";
  }
  return "?";
}

const Tensor* ModelFile::find(std::string_view name) const {
  for (const Tensor& t : tensors)
    if (t.name() == name) return &t;
  return nullptr;
}

uint64_t ModelFile::parameter_count() const {
  uint64_t n = 0;
  for (const Tensor& t : tensors) n += uint64_t(t.numel());
  return n;
}

uint64_t ModelFile::byte_count() const {
  uint64_t n = 0;
  for (const Tensor& t : tensors) n += t.nbytes();
  return n;
}

// An ONNX graph's weights and what it is: opsets, producer, inputs and outputs, and how
// many nodes of each operator it has.
static ModelFile from_onnx(const std::string& path) {
  const OnnxModel o = read_onnx(path);
  ModelFile m;
  m.format = ModelFormat::ONNX;
  m.path = path;
  m.architecture = "onnx";
  m.tensors = o.weights();
  auto& h = m.hparams;
  h["ir_version"] = o.ir_version;
  h["producer"] = o.producer;
  h["graph"] = o.graph.name;
  for (const auto& [domain, v] : o.opsets)
    h["opset_import"][domain.empty() ? "ai.onnx" : domain] = v;
  auto values = [](const std::vector<OnnxValueInfo>& vs) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const OnnxValueInfo& v : vs) {
      nlohmann::ordered_json dims = nlohmann::ordered_json::array();
      for (size_t i = 0; i < v.dims.size(); ++i)
        dims.push_back(v.dims[i] >= 0 ? nlohmann::ordered_json(v.dims[i])
                                      : nlohmann::ordered_json(
                                            v.dim_params[i].empty() ? "?" : v.dim_params[i]));
      a.push_back({{"name", v.name}, {"shape", dims}});
    }
    return a;
  };
  h["inputs"] = values(o.graph.inputs);
  h["outputs"] = values(o.graph.outputs);
  h["nodes"] = o.graph.nodes.size();
  std::map<std::string, int> ops;
  for (const OnnxNode& n : o.graph.nodes)
    ++ops[n.domain.empty() ? n.op_type : n.domain + "." + n.op_type];
  for (const auto& [op, count] : ops) h["operators"][op] = count;
  return m;
}

static ModelFile from_safetensors(const std::string& path) {
  SafetensorsFile st = read_safetensors(path);
  ModelFile m;
  m.format = ModelFormat::Safetensors;
  m.path = path;
  m.metadata = std::move(st.metadata);
  m.tensors = std::move(st.tensors);
  return m;
}

ModelFile open_model_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw Error(path, "no such file or directory");
  if (fs::is_directory(st)) return read_hf_directory(path);

  // Sniff the first bytes: GGUF has a magic; safetensors starts with a small length and
  // '{'; llama2.c has neither, so it is recognised by its extension.
  const auto file = MappedFile::open(path);
  const auto* p = reinterpret_cast<const unsigned char*>(file->data());
  const size_t n = file->size();
  if (n >= 4 && std::memcmp(p, "GGUF", 4) == 0) return read_gguf_model(path);
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".safetensors" || (n >= 9 && p[8] == '{')) return from_safetensors(path);
  if (ext == ".bin") return read_llama2c(path);
  if (ext == ".gguf") return read_gguf_model(path);  // lets the reader say what is wrong
  if (ext == ".onnx") return from_onnx(path);        // protobuf has no magic: by its extension
  throw Error(path,
              "unknown model format (expected a safetensors, GGUF, ONNX or llama2.c .bin "
              "file, or a Hugging Face model directory)");
}

}  // namespace mcw
