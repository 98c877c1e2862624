// Writes GPTQ and AWQ checkpoints the way AutoGPTQ's QuantLinear.pack and AutoAWQ's
// WQLinear_GEMM.from_linear lay them out, from their documentation and code as read (3-bit
// GPTQ words filled by the explicit 10 + 1 + 10 + 1 + 10 schedule, AWQ's
// (0, 2, 4, 6, 1, 3, 5, 7) nibble order): independent of MCW's decoder, which reads both
// as bitstreams. For tests and the checkpoint fuzz targets.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "engine/core/half.h"
#include "engine/io/safetensors.h"
#include "engine/model/llama_model.h"
#include "engine/model/llama_save.h"
#include "llama_test_util.h"

namespace mcw::test {

enum class Layout { GptqV1, GptqV2, Awq };

struct QuantLayer {
  int64_t out, in;
  std::vector<int32_t> g_idx;   // [in]
  std::vector<uint32_t> q;      // [out, in] codes
  std::vector<uint32_t> zero;   // [groups, out]
  std::vector<uint16_t> scale;  // [groups, out] f16
  std::vector<float> expected;  // [out, in]: scale · (q − zero)
};

// Min-max asymmetric codes per (output, group), scales rounded to f16 as checkpoints store.
inline QuantLayer quantize_for_checkpoint(const Tensor& w, int bits, int64_t group_size,
                                          bool act_order, std::mt19937& rng) {
  QuantLayer L{w.dim(0), w.dim(1), {}, {}, {}, {}, {}};
  const int64_t gs = group_size < 0 ? L.in : group_size;
  const int64_t groups = (L.in + gs - 1) / gs;
  std::vector<int64_t> perm(size_t(L.in));
  std::iota(perm.begin(), perm.end(), 0);
  if (act_order) std::shuffle(perm.begin(), perm.end(), rng);
  L.g_idx.resize(size_t(L.in));
  for (int64_t j = 0; j < L.in; ++j) L.g_idx[size_t(perm[size_t(j)])] = int32_t(j / gs);
  const float* v = w.as<float>();
  const uint32_t qmax = (1u << bits) - 1;
  L.zero.assign(size_t(groups * L.out), 0);
  L.scale.assign(size_t(groups * L.out), 0);
  L.q.assign(size_t(L.out * L.in), 0);
  L.expected.assign(size_t(L.out * L.in), 0);
  for (int64_t o = 0; o < L.out; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      float lo = 0, hi = 0;
      for (int64_t i = 0; i < L.in; ++i)
        if (L.g_idx[size_t(i)] == g)
          lo = std::min(lo, v[o * L.in + i]), hi = std::max(hi, v[o * L.in + i]);
      const uint16_t s16 = f32_to_f16(std::max(hi - lo, 1e-6f) / float(qmax));
      const float s = f16_to_f32(s16);
      const uint32_t z = uint32_t(std::clamp(std::nearbyint(-lo / s), 0.0f, float(qmax)));
      L.scale[size_t(g * L.out + o)] = s16;
      L.zero[size_t(g * L.out + o)] = z;
      for (int64_t i = 0; i < L.in; ++i) {
        if (L.g_idx[size_t(i)] != g) continue;
        const float qf =
            std::clamp(std::nearbyint(v[o * L.in + i] / s) + float(z), 0.0f, float(qmax));
        L.q[size_t(o * L.in + i)] = uint32_t(qf);
        // (q − z)·s in f16, as the reference tools dequantise
        L.expected[size_t(o * L.in + i)] = f16_to_f32(f32_to_f16(s * (qf - float(z))));
      }
    }
  return L;
}

// AutoGPTQ's pack loop over one column of values (length a multiple of 32): words[row].
inline std::vector<uint32_t> gptq_pack_column(const std::vector<uint32_t>& v, int bits) {
  std::vector<uint32_t> words(v.size() / 32 * size_t(bits), 0);
  size_t i = 0, row = 0;
  while (row < words.size()) {
    if (bits != 3) {
      for (size_t j = i; j < i + 32 / size_t(bits); ++j) words[row] |= v[j] << (bits * (j - i));
      i += 32 / size_t(bits), row += 1;
      continue;
    }
    for (size_t j = i; j < i + 10; ++j) words[row] |= v[j] << (3 * (j - i));
    i += 10;
    words[row] |= v[i] << 30;
    row += 1;
    words[row] |= (v[i] >> 2) & 1;
    i += 1;
    for (size_t j = i; j < i + 10; ++j) words[row] |= v[j] << (3 * (j - i) + 1);
    i += 10;
    words[row] |= v[i] << 31;
    row += 1;
    words[row] |= (v[i] >> 1) & 3;
    i += 1;
    for (size_t j = i; j < i + 10; ++j) words[row] |= v[j] << (3 * (j - i) + 2);
    i += 10;
    row += 1;
  }
  return words;
}

inline Tensor i32_tensor(const std::string& name, Shape shape, const std::vector<uint32_t>& v) {
  Tensor t = Tensor::zeros(DType::I32, std::move(shape), name);
  std::memcpy(t.mutable_data(), v.data(), v.size() * 4);
  return t;
}

inline Tensor f16_tensor(const std::string& name, Shape shape, const std::vector<uint16_t>& v) {
  Tensor t = Tensor::zeros(DType::F16, std::move(shape), name);
  std::memcpy(t.mutable_data(), v.data(), v.size() * 2);
  return t;
}

inline std::vector<Tensor> layer_parts(const std::string& prefix, const QuantLayer& L, int bits,
                                       Layout layout, bool write_g_idx) {
  const int64_t groups = int64_t(L.zero.size()) / L.out;
  std::vector<Tensor> parts;
  if (layout == Layout::Awq) {
    static constexpr int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    const auto pack_rows = [&](const auto& value, int64_t rows) {
      std::vector<uint32_t> w(size_t(rows * L.out / 8), 0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t col = 0; col < L.out / 8; ++col)
          for (int k = 0; k < 8; ++k)
            w[size_t(r * (L.out / 8) + col)] |= value(r, col * 8 + kOrder[k]) << (4 * k);
      return w;
    };
    parts.push_back(i32_tensor(
        prefix + ".qweight", {L.in, L.out / 8},
        pack_rows([&](int64_t i, int64_t o) { return L.q[size_t(o * L.in + i)]; }, L.in)));
    parts.push_back(i32_tensor(
        prefix + ".qzeros", {groups, L.out / 8},
        pack_rows([&](int64_t g, int64_t o) { return L.zero[size_t(g * L.out + o)]; }, groups)));
  } else {
    std::vector<uint32_t> qweight(size_t(L.in / 32 * bits * L.out));
    for (int64_t o = 0; o < L.out; ++o) {
      std::vector<uint32_t> col(L.q.begin() + o * L.in, L.q.begin() + (o + 1) * L.in);
      const auto words = gptq_pack_column(col, bits);
      for (size_t r = 0; r < words.size(); ++r) qweight[r * size_t(L.out) + size_t(o)] = words[r];
    }
    parts.push_back(i32_tensor(prefix + ".qweight", {L.in / 32 * bits, L.out}, qweight));
    std::vector<uint32_t> qzeros;
    for (int64_t g = 0; g < groups; ++g) {
      std::vector<uint32_t> row(L.zero.begin() + g * L.out, L.zero.begin() + (g + 1) * L.out);
      if (layout == Layout::GptqV1)
        for (uint32_t& z : row) z = (z - 1) & ((1u << bits) - 1);  // AutoGPTQ: zeros -= 1
      const auto words = gptq_pack_column(row, bits);
      qzeros.insert(qzeros.end(), words.begin(), words.end());
    }
    parts.push_back(i32_tensor(prefix + ".qzeros", {groups, L.out / 32 * bits}, qzeros));
    if (write_g_idx) {
      std::vector<uint32_t> g(L.g_idx.begin(), L.g_idx.end());
      parts.push_back(i32_tensor(prefix + ".g_idx", {L.in}, g));
    }
  }
  parts.push_back(f16_tensor(prefix + ".scales", {groups, L.out}, L.scale));
  return parts;
}

struct Written {
  std::filesystem::path dir;
  LlamaModel dense;  // the same model with every linear replaced by its expected values
  std::map<std::string, std::vector<float>> expected;
};

inline LlamaConfig checkpoint_config() {
  LlamaConfig c = tiny_config(8, 4);  // q 64, kv 32, dim 64: whole 32-wide packs
  c.hidden_dim = 128;
  return c;
}

// A tiny llama (checkpoint_config) saved to `dir` with every linear as `layout` parts;
// tok: the tokenizer files saved beside it.
inline Written write_checkpoint(const std::filesystem::path& dir, Layout layout, int bits,
                                int64_t gs, bool act_order, bool write_g_idx = true,
                                const TokenizerFiles& tok = {}) {
  Written out;
  out.dir = dir;
  out.dense = random_llama(checkpoint_config(), 11);
  save_llama_hf(out.dense, dir.string(), tok);
  std::mt19937 rng(5);
  std::vector<Tensor> tensors;
  for (auto& [name, t] : out.dense.named_tensors()) {
    const bool linear = name.find("_proj.weight") != std::string::npos;
    if (!linear) {
      tensors.push_back(*t);
      continue;
    }
    const QuantLayer L = quantize_for_checkpoint(*t, bits, gs, act_order, rng);
    const std::string prefix = name.substr(0, name.size() - 7);
    for (Tensor& p : layer_parts(prefix, L, bits, layout, write_g_idx)) tensors.push_back(p);
    out.expected[name] = L.expected;
    *t = Tensor::from_f32(L.expected, t->shape(), name);
  }
  write_safetensors((dir / "model.safetensors").string(), tensors);
  nlohmann::ordered_json config;
  std::ifstream(dir / "config.json") >> config;
  nlohmann::ordered_json q = {
      {"quant_method", layout == Layout::Awq ? "awq" : "gptq"}, {"bits", bits}, {"group_size", gs}};
  if (layout == Layout::Awq) {
    q["zero_point"] = true, q["version"] = "gemm";
  } else {
    q["desc_act"] = act_order, q["sym"] = false;
    q["checkpoint_format"] = layout == Layout::GptqV1 ? "gptq" : "gptq_v2";
  }
  config["quantization_config"] = q;
  std::ofstream(dir / "config.json") << config.dump(2);
  return out;
}

}  // namespace mcw::test
