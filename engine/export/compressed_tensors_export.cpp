#include "engine/export/compressed_tensors_export.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/model_file.h"
#include "engine/io/safetensors.h"
#include "engine/io/safetensors_stream.h"
#include "engine/io/staging_dir.h"
#include "engine/io/tokenizer_files.h"

namespace mcw {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

// Why a layer cannot go out as pack-quantized parts; empty when it can.
std::string not_packable(const CompressedTensor& t) {
  if (!t.mask.empty()) return "a sparsity mask";
  if (t.coding == WeightCoding::Dense) return "unquantised values";
  if (t.coding != WeightCoding::Affine) return std::string(coding_name(t.coding)) + " coding";
  if (t.bits != 1 && t.bits != 2 && t.bits != 4 && t.bits != 8)
    return std::to_string(t.bits) + "-bit codes (two incompatible compressed-tensors packings)";
  if (!t.outlier_index.empty()) return "outliers kept in f16";
  if (!t.input_scale.empty()) return "an AWQ input scale not folded into the op before it";
  for (float s : t.scales)
    if (f16_to_f32(f32_to_f16(s)) != s) return "scales that are not f16 values";
  for (float z : t.zeros)
    if (z != std::nearbyint(z) || z < 0 || z >= float(1 << t.bits))
      return "non-integer zero points";
  return {};
}

Tensor i32(const std::string& name, Shape shape, std::vector<uint32_t> words) {
  Tensor t = Tensor::zeros(DType::I32, std::move(shape), name);
  std::copy(words.begin(), words.end(), static_cast<uint32_t*>(t.mutable_data()));
  return t;
}

Tensor f16(const std::string& name, Shape shape, const std::vector<float>& v) {
  Tensor t = Tensor::zeros(DType::F16, std::move(shape), name);
  f32_to_f16_row(v.data(), static_cast<uint16_t*>(t.mutable_data()), v.size());
  return t;
}

// Values v[r, j] (b bits, r < rows, j < n) packed along j, 32/b per word, LSB first.
template <class Value>
std::vector<uint32_t> pack_along(int64_t rows, int64_t n, int bits, int64_t& words,
                                 const Value& v) {
  const int64_t per = 32 / bits;
  words = (n + per - 1) / per;
  std::vector<uint32_t> out(size_t(rows * words), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) out[size_t(r * words + j / per)] |= v(r, j) << (j % per * bits);
  return out;
}

int64_t words_for(int64_t n, int bits) { return (n + 32 / bits - 1) / (32 / bits); }

// The parts' names, dtypes and shapes, known from the scheme before any is built.
std::vector<SafetensorsEntry> part_entries(const std::string& prefix, const CompressedTensor& t) {
  const int64_t groups = t.groups();
  std::vector<SafetensorsEntry> e = {
      {prefix + ".weight_packed", DType::I32, {t.rows, words_for(t.cols, t.bits)}},
      {prefix + ".weight_shape", DType::I64, {2}},
      {prefix + ".weight_scale", DType::F16, {t.rows, groups}}};
  if (!t.symmetric)
    e.push_back({prefix + ".weight_zero_point", DType::I32, {words_for(t.rows, t.bits), groups}});
  if (!t.g_idx.empty()) e.push_back({prefix + ".weight_g_idx", DType::I32, {t.cols}});
  return e;
}

std::vector<Tensor> packed_parts(const std::string& prefix, const CompressedTensor& t) {
  std::vector<Tensor> parts;
  std::vector<uint8_t> q(size_t(t.rows * t.cols));
  unpack_codes(t.codes.data(), q.size(), t.bits, q.data());
  int64_t words = 0;
  auto packed = pack_along(t.rows, t.cols, t.bits, words, [&](int64_t r, int64_t c) {
    return uint32_t(q[size_t(r * t.cols + c)]);
  });
  parts.push_back(i32(prefix + ".weight_packed", {t.rows, words}, std::move(packed)));
  Tensor shape = Tensor::zeros(DType::I64, {2}, prefix + ".weight_shape");
  static_cast<int64_t*>(shape.mutable_data())[0] = t.rows;
  static_cast<int64_t*>(shape.mutable_data())[1] = t.cols;
  parts.push_back(shape);
  const int64_t groups = t.groups();
  parts.push_back(f16(prefix + ".weight_scale", {t.rows, groups}, t.scales));
  if (!t.symmetric) {  // [groups, rows] packed along the rows, stored transposed back
    int64_t zw = 0;
    const auto zt = pack_along(groups, t.rows, t.bits, zw, [&](int64_t g, int64_t r) {
      return uint32_t(t.zeros[size_t(r * groups + g)]);
    });
    std::vector<uint32_t> zp(size_t(zw * groups));
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t k = 0; k < zw; ++k) zp[size_t(k * groups + g)] = zt[size_t(g * zw + k)];
    parts.push_back(i32(prefix + ".weight_zero_point", {zw, groups}, std::move(zp)));
  }
  if (!t.g_idx.empty())
    parts.push_back(i32(prefix + ".weight_g_idx", {t.cols},
                        std::vector<uint32_t>(t.g_idx.begin(), t.g_idx.end())));
  return parts;
}

Json weights_args(const CompressedTensor& t) {
  const bool channel = t.group_size >= t.cols && t.g_idx.empty();
  return Json{{"num_bits", t.bits},
              {"type", "int"},
              {"symmetric", t.symmetric},
              {"strategy", channel ? "channel" : "group"},
              {"group_size", channel ? Json() : Json(t.group_size)},
              {"block_structure", Json()},
              {"dynamic", false},
              {"actorder", t.g_idx.empty() ? Json() : Json("group")},
              {"observer", "minmax"},
              {"observer_kwargs", Json::object()}};
}

}  // namespace

// Every layer is read twice, once to plan the header and once to write its parts, so that
// one layer is in memory at a time: the file is written as a stream (the header first), and
// an 8 B model's codes are gigabytes. The dense tensors go from the mapped model file.
CtExportReport export_compressed_tensors(const std::string& model_dir, const std::string& out_dir) {
  const std::string packed_path = find_packed_beside(model_dir);
  if (packed_path.empty())
    throw Error(model_dir, std::string("has no ") + kPackedFileName +
                               ": export takes a directory written by mcw compress");
  const ModelFile model = open_model_file(model_dir);
  if (model.format != ModelFormat::HFDirectory)
    throw Error(model_dir, "export takes the directory mcw compress wrote, not a single file");
  const PackedSafetensorsReader packed(packed_path);
  std::map<std::string, size_t> layer_of;
  for (size_t i = 0; i < packed.size(); ++i) layer_of.emplace(packed.scheme(i).name, i);

  CtExportReport report;
  std::vector<SafetensorsEntry> entries;
  std::vector<const Tensor*> dense;  // model tensors written as they are; null: packed
  std::map<std::string, std::pair<Json, std::vector<std::string>>> groups;  // args -> targets
  for (const Tensor& t : model.tensors) {
    const auto it = layer_of.find(t.name());
    const CompressedTensor c = it == layer_of.end() ? CompressedTensor{} : packed.read(it->second);
    const std::string why = it == layer_of.end() ? std::string() : not_packable(c);
    if (it == layer_of.end() || !why.empty()) {
      if (!t.data() || is_block_type(t.dtype()))
        throw Error(model_dir, "tensor '" + t.name() + "' is " + std::string(dtype_name(t.dtype())) +
                                   ", which a safetensors file cannot hold as it is");
      entries.push_back({t.name(), t.dtype(), t.shape()});
      dense.push_back(&t);
      if (it != layer_of.end()) report.dense.emplace_back(t.name(), why);
      continue;
    }
    const std::string prefix = t.name().substr(0, t.name().size() - std::string(".weight").size());
    if (t.name() != prefix + ".weight")
      throw Error(packed_path, "layer '" + t.name() + "' is not a '.weight' tensor");
    for (SafetensorsEntry& e : part_entries(prefix, c)) entries.push_back(std::move(e));
    dense.push_back(nullptr);
    const Json args = weights_args(c);
    auto& g = groups[args.dump()];
    g.first = args;
    g.second.push_back(prefix);
    report.packed.push_back(t.name());
  }
  if (report.packed.empty())
    throw Error(packed_path,
                "no layer has a pack-quantized form (group-wise affine codes at 1, "
                "2, 4 or 8 bits); nothing to export as compressed-tensors");

  StagingDir staging(out_dir);
  SafetensorsStreamWriter out(staging.file("model.safetensors"), entries, {{"format", "pt"}});
  size_t next = 0;  // into entries
  for (size_t i = 0; i < model.tensors.size(); ++i) {
    if (const Tensor* t = dense[i]) {
      out.write(t->data(), t->nbytes());
      ++next;
      continue;
    }
    for (const Tensor& p :
         packed_parts(model.tensors[i].name().substr(0, model.tensors[i].name().rfind('.')),
                      packed.read(layer_of.at(model.tensors[i].name())))) {
      const SafetensorsEntry& e = entries.at(next++);
      if (p.name() != e.name || p.dtype() != e.dtype || p.shape() != e.shape)
        throw Error(packed_path, "internal: part '" + p.name() + "' differs from its planned entry");
      out.write(p.data(), p.nbytes());
    }
  }
  out.commit();

  Json config = model.hparams;
  Json cg = Json::object(), ignore = Json::array({"lm_head"});
  int k = 0;
  for (const auto& [key, g] : groups)
    cg["group_" + std::to_string(k++)] = {{"targets", g.second},
                                          {"weights", g.first},
                                          {"input_activations", Json()},
                                          {"output_activations", Json()}};
  for (const auto& [name, why] : report.dense) ignore.push_back(name.substr(0, name.rfind('.')));
  config["quantization_config"] = {{"quant_method", "compressed-tensors"},
                                   {"format", "pack-quantized"},
                                   {"quantization_status", "compressed"},
                                   {"config_groups", cg},
                                   {"ignore", ignore},
                                   {"kv_cache_scheme", Json()},
                                   {"sparsity_config", Json::object()}};

  {
    std::ofstream f(staging.file("config.json"));
    f << config.dump(2) << "\n";
    if (!f) throw Error(staging.file("config.json"), "cannot write");
  }
  copy_tokenizer_files(model, staging.path().string());
  staging.commit();
  return report;
}

}  // namespace mcw
