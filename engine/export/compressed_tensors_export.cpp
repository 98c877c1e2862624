#include "engine/export/compressed_tensors_export.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/core/error.h"
#include "engine/core/blocks.h"
#include "engine/core/half.h"
#include "engine/export/awq_fold.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/model_file.h"
#include "engine/io/safetensors.h"
#include "engine/io/safetensors_stream.h"
#include "engine/io/sparse24_bitmask.h"
#include "engine/io/staging_dir.h"
#include "engine/io/tokenizer_files.h"
#include "engine/model/llama_config.h"
#include "engine/model/llama_save.h"

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
  for (float s : t.scales)
    if (f16_to_f32(f32_to_f16(s)) != s) return "scales that are not f16 values";
  for (float z : t.zeros)
    if (z != std::nearbyint(z) || z < 0 || z >= float(1 << t.bits))
      return "non-integer zero points";
  return {};
}

// Why a masked layer cannot go out as sparse-24-bitmask parts; empty when it can. `w` is
// the layer as the model file holds it (the values written).
std::string not_sparse24(const CompressedTensor& c, const Tensor& w) {
  bool nm24 = c.cols % 4 == 0;  // the mask keeps at most 2 of every aligned 4 along a row
  for (int64_t g = 0; nm24 && g < c.rows * c.cols; g += 4)
    nm24 = c.kept(g) + c.kept(g + 1) + c.kept(g + 2) + c.kept(g + 3) <= 2;
  if (c.coding != WeightCoding::Dense)
    return nm24 ? "2:4 sparse and quantised: vLLM takes that as marlin-24 (4/8-bit symmetric "
                  "codes) or as sparse-24-bitmask over 8-bit W8A8 codes; not written as either "
                  "yet"
                : "a sparsity mask";
  if (!c.outlier_index.empty()) return "a sparsity mask and outliers";
  if (!c.input_scale.empty()) return "a sparsity mask and an AWQ input scale";
  if (!w.data() || w.ndim() != 2 || w.dim(0) != c.rows || w.dim(1) != c.cols)
    return "a sparsity mask on a weight stored as " + std::string(dtype_name(w.dtype()));
  const std::string unfit = sparse24_unfit(w.dtype(), c.rows, c.cols, w.data());
  if (unfit.empty()) return {};
  return nm24 ? "a 2:4 mask, but " + unfit : "a sparsity mask";
}

// vLLM runs q/k/v_proj and gate/up_proj as one fused linear of one scheme: the name of the
// fused group a layer prefix belongs to, empty for a layer that is not fused.
std::string fused_group(const std::string& prefix) {
  const size_t dot = prefix.rfind('.');
  const std::string last = prefix.substr(dot + 1), head = prefix.substr(0, dot + 1);
  if (last == "q_proj" || last == "k_proj" || last == "v_proj") return head + "qkv_proj";
  if (last == "gate_proj" || last == "up_proj") return head + "gate_up_proj";
  return {};
}

std::vector<Tensor> sparse24_parts(const std::string& prefix, const Tensor& w) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  Tensor shape = Tensor::zeros(DType::I64, {2, 1}, prefix + ".shape");
  static_cast<int64_t*>(shape.mutable_data())[0] = rows;
  static_cast<int64_t*>(shape.mutable_data())[1] = cols;
  Tensor values = Tensor::zeros(w.dtype(), {rows, cols / 2}, prefix + ".compressed");
  Tensor mask = Tensor::zeros(DType::U8, {rows, (cols + 7) / 8}, prefix + ".bitmask");
  sparse24_compress(w.dtype(), rows, cols, w.data(), values.mutable_data(),
                    static_cast<uint8_t*>(mask.mutable_data()));
  return {shape, values, mask};
}

// Zero values (±0) among the model's float tensors, and all their values: llm-compressor's
// global_sparsity is the first over the second.
std::pair<uint64_t, uint64_t> zero_count(const std::vector<Tensor>& tensors) {
  uint64_t zeros = 0, total = 0;
  for (const Tensor& t : tensors) {
    if (!t.data()) continue;
    const auto n = uint64_t(t.numel());
    if (t.dtype() == DType::F32) {
      for (uint64_t i = 0; i < n; ++i) zeros += (t.as<uint32_t>()[i] & 0x7fffffffu) == 0;
    } else if (t.dtype() == DType::F16 || t.dtype() == DType::BF16) {
      for (uint64_t i = 0; i < n; ++i) zeros += (t.as<uint16_t>()[i] & 0x7fffu) == 0;
    } else {
      continue;
    }
    total += n;
  }
  return {zeros, total};
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

// `t` (F32, F16 or BF16) with row r divided by d[r], in its own dtype.
Tensor rows_divided(const Tensor& t, const std::vector<float>& d) {
  std::vector<float> v = t.to_f32();
  divide_rows(v.data(), t.dim(0), t.ndim() == 1 ? 1 : t.dim(1), d);
  Tensor out = Tensor::zeros(t.dtype(), t.shape(), t.name());
  from_f32(t.dtype(), v.data(), out.mutable_data(), v.size());
  return out;
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
  // MCW's packed layers are Phi-3's parts, and compressed-tensors quantises each linear
  // apart: a Phi-3 goes out with q/k/v and gate/up apart, as the Llama (or, with its
  // window, the Mistral) it computes.
  const LlamaConfig cfg = llama_config_from(model);
  if (cfg.model_type == "gpt2")  // vLLM's GPT-2 reads Conv1D weights; not written yet
    throw Error(model_dir, "compressed-tensors export of a GPT-2 is not supported yet");
  const std::vector<Tensor> tensors = hf_unfused(cfg, model.tensors);
  const PackedSafetensorsReader packed(packed_path);
  std::map<std::string, size_t> layer_of;
  for (size_t i = 0; i < packed.size(); ++i) layer_of.emplace(packed.scheme(i).name, i);

  // Each model tensor's form, with the parts it is planned as.
  enum class Form { Dense, Packed, Sparse24 };
  struct Plan {
    Form form = Form::Dense;
    std::string why;  // a compressed layer written dense: why
    std::vector<SafetensorsEntry> entries;
    Json args;  // Packed: the weights' quantization args
  };
  std::vector<Plan> plan(tensors.size());
  std::map<std::string, size_t> index;  // tensor name -> i
  std::map<std::string, std::vector<float>> awq_scales;  // of the layers that could be packed
  const auto prefix_of = [](const std::string& name) { return name.substr(0, name.rfind('.')); };
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    index[t.name()] = i;
    const auto it = layer_of.find(t.name());
    if (it == layer_of.end()) continue;
    const std::string prefix = prefix_of(t.name());
    const CompressedTensor c = packed.read(it->second);
    plan[i].why = not_packable(c);
    if (plan[i].why.empty()) {
      plan[i].form = Form::Packed;
      plan[i].entries = part_entries(prefix, c);
      plan[i].args = weights_args(c);
      if (!c.input_scale.empty()) awq_scales[t.name()] = c.input_scale;
    } else if (!c.mask.empty()) {
      plan[i].why = not_sparse24(c, t);
      if (plan[i].why.empty()) {
        plan[i].form = Form::Sparse24;
        plan[i].entries = {{prefix + ".shape", DType::I64, {2, 1}},
                           {prefix + ".compressed", t.dtype(), {c.rows, c.cols / 2}},
                           {prefix + ".bitmask", DType::U8, {c.rows, (c.cols + 7) / 8}}};
      }
    }
  }
  const AwqFolds folds = plan_awq_folds(cfg, awq_scales);
  for (const auto& [name, why] : folds.refused) {
    Plan& p = plan[index.at(name)];
    p = Plan{};
    p.why = "an AWQ input scale that cannot be folded into the op before it: " + why;
  }
  // vLLM reads a sparse-24-bitmask layer only with no quantization config group over it or
  // one of 8-bit weights and activations (CompressedTensors24), and a layer outside every
  // group of a config that has groups fails to load: beside pack-quantized (weight-only)
  // layers the 2:4 layers stay dense. So does a fused group (q/k/v, gate/up) that is not
  // sparse-24 throughout, which vLLM could not give one scheme.
  const bool any_packed = std::any_of(plan.begin(), plan.end(),
                                      [](const Plan& p) { return p.form == Form::Packed; });
  std::map<std::string, std::string> fused_dense;  // fused group -> a member not sparse-24
  for (size_t i = 0; i < plan.size(); ++i) {
    const std::string& name = tensors[i].name();
    if (const std::string g = fused_group(prefix_of(name));
        !g.empty() && plan[i].form != Form::Sparse24 && name == prefix_of(name) + ".weight")
      fused_dense.emplace(g, prefix_of(name));
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    if (plan[i].form != Form::Sparse24) continue;
    const auto f = fused_dense.find(fused_group(prefix_of(tensors[i].name())));
    if (any_packed)
      plan[i].why = "2:4 sparse but unquantised beside pack-quantized layers, which vLLM "
                    "cannot load as sparse-24-bitmask";
    else if (f != fused_dense.end())
      plan[i].why = "2:4 sparse, but " + f->second +
                    " is not, and vLLM runs them as one fused layer of one scheme";
    else
      continue;
    plan[i].form = Form::Dense;
  }

  CtExportReport report;
  report.awq_folded = folds.folded;
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::pair<Json, std::vector<std::string>>> groups;  // args -> targets
  Json sparse_targets = Json::array();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    Plan& p = plan[i];
    if (p.form == Form::Dense) {
      if (!t.data() || is_block_type(t.dtype()))
        throw Error(model_dir, "tensor '" + t.name() + "' is " + std::string(dtype_name(t.dtype())) +
                                   ", which a safetensors file cannot hold as it is");
      entries.push_back({t.name(), t.dtype(), t.shape()});
      if (layer_of.count(t.name())) report.dense.emplace_back(t.name(), p.why);
      continue;
    }
    if (t.name() != prefix_of(t.name()) + ".weight")
      throw Error(packed_path, "layer '" + t.name() + "' is not a '.weight' tensor");
    for (SafetensorsEntry& e : p.entries) entries.push_back(std::move(e));
    if (p.form == Form::Sparse24) {
      sparse_targets.push_back(prefix_of(t.name()));
      report.sparse24.push_back(t.name());
      continue;
    }
    auto& g = groups[p.args.dump()];
    g.first = p.args;
    g.second.push_back(prefix_of(t.name()));
    report.packed.push_back(t.name());
  }
  if (report.packed.empty() && report.sparse24.empty())
    throw Error(packed_path,
                "no layer has a pack-quantized form (group-wise affine codes at 1, 2, 4 or 8 "
                "bits) or a sparse-24-bitmask form (unquantised, 2:4 sparse); nothing to "
                "export as compressed-tensors");

  StagingDir staging(out_dir);
  SafetensorsStreamWriter out(staging.file("model.safetensors"), entries, {{"format", "pt"}});
  size_t next = 0;  // into entries
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto fold = folds.divide.find(tensors[i].name());
    const Tensor t = fold == folds.divide.end() || plan[i].form == Form::Packed
                         ? tensors[i]
                         : rows_divided(tensors[i], fold->second);
    if (plan[i].form == Form::Dense) {
      out.write(t.data(), t.nbytes());
      ++next;
      continue;
    }
    std::vector<Tensor> parts;
    if (plan[i].form == Form::Sparse24) {
      parts = sparse24_parts(prefix_of(t.name()), t);
    } else {
      CompressedTensor c = packed.read(layer_of.at(t.name()));
      c.input_scale.clear();  // folded into the op before it (or never there)
      if (fold != folds.divide.end()) divide_rows(c.scales.data(), c.rows, c.groups(), fold->second);
      parts = packed_parts(prefix_of(t.name()), c);
    }
    for (const Tensor& p : parts) {
      const SafetensorsEntry& e = entries.at(next++);
      if (p.name() != e.name || p.dtype() != e.dtype || p.shape() != e.shape)
        throw Error(packed_path, "internal: part '" + p.name() + "' differs from its planned entry");
      out.write(p.data(), p.nbytes());
    }
  }
  out.commit();

  Json config = model.hparams;
  if (cfg.fused_projections()) {
    LlamaConfig apart = cfg;
    apart.model_type = "llama";
    const Json hf = apart.to_hf_config();
    for (const auto& [key, value] : hf.items()) config[key] = value;
  }
  Json cg = Json::object(), ignore = Json::array({"lm_head"});
  int k = 0;
  for (const auto& [key, g] : groups)
    cg["group_" + std::to_string(k++)] = {{"targets", g.second},
                                          {"weights", g.first},
                                          {"input_activations", Json()},
                                          {"output_activations", Json()}};
  for (const auto& [name, why] : report.dense) ignore.push_back(name.substr(0, name.rfind('.')));
  // The sparsity config as compressed-tensors' Sparse24BitMaskConfig dumps it: targets by
  // layer name (vLLM matches a fused layer when every member is listed), global_sparsity
  // the fraction of zeros among the model's float values, as llm-compressor computes it.
  Json sparsity = Json::object();
  if (!report.sparse24.empty()) {
    const auto [zeros, total] = zero_count(tensors);
    sparsity = {{"format", "sparse-24-bitmask"},
                {"targets", sparse_targets},
                {"ignore", ignore},
                {"global_sparsity", total ? double(zeros) / double(total) : 0.0},
                {"sparsity_structure", "2:4"},
                {"registry_requires_subclass", false}};
  }
  if (report.packed.empty())  // sparse only: no quantization fields, as llm-compressor writes
    config["quantization_config"] = {{"quant_method", "compressed-tensors"},
                                     {"sparsity_config", sparsity}};
  else
    config["quantization_config"] = {{"quant_method", "compressed-tensors"},
                                     {"format", "pack-quantized"},
                                     {"quantization_status", "compressed"},
                                     {"config_groups", cg},
                                     {"ignore", ignore},
                                     {"kv_cache_scheme", Json()},
                                     {"sparsity_config", sparsity}};

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
