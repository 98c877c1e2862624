// Writes compressed-tensors checkpoints as the library's compressors lay them out, from
// its documentation and code as read (tests and fuzz targets; independent of MCW's reader):
// pack-quantized codes offset by 2^(b−1) and packed LSB-first along the input, 32/b per
// word, or as one bitstream per row (the 0.18 layout); zero points packed the same way
// along the output; int-quantized I8 and float-quantized F8_E4M3 weights; scales in bf16.
#pragma once
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/core/half.h"
#include "engine/io/safetensors.h"
#include "engine/model/llama_save.h"
#include "llama_test_util.h"
#include "quantized_checkpoint_writer.h"

namespace mcw::test {

enum class CtFormat { PackQuantized, IntQuantized, FloatQuantized };

struct CtOptions {
  CtFormat format = CtFormat::PackQuantized;
  int bits = 4;
  int64_t group_size = 16;  // > 0: group strategy; 0: channel; FloatQuantized: block 16 x 16
  bool symmetric = true;
  bool act_order = false;
  bool stream = false;  // pack as one bitstream per row (compressed-tensors 0.18)
  bool f16_scales = false;  // pack-/int-quantized scales in f16 instead of bf16
};

// e4m3fn byte -> value, from the OCP FP8 definition: bias 7, subnormals, S.1111.111 NaN.
inline float e4m3_value(uint8_t b) {
  const int sign = b >> 7, e = (b >> 3) & 15, m = b & 7;
  const float mag = e == 0 ? std::ldexp(float(m), -9) : std::ldexp(1.0f + float(m) / 8.0f, e - 7);
  return sign ? -mag : mag;
}

// Packs the b-bit unsigned values of each row of v [rows, n] into 32-bit words.
inline std::vector<uint32_t> ct_pack_rows(const std::vector<uint32_t>& v, int64_t rows, int64_t n,
                                          int bits, bool stream, int64_t* words_out) {
  const int64_t per = 32 / bits;
  const int64_t words = stream ? (n * bits + 31) / 32 : (n + per - 1) / per;
  std::vector<uint32_t> w(size_t(rows * words), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t u = v[size_t(r * n + i)];
      if (!stream) {
        w[size_t(r * words + i / per)] |= u << (i % per * bits);
        continue;
      }
      for (int k = 0; k < bits; ++k) {  // bit by bit through the row's stream
        const int64_t bit = i * bits + k;
        w[size_t(r * words + bit / 32)] |= ((u >> k) & 1u) << (bit % 32);
      }
    }
  *words_out = words;
  return w;
}

inline Tensor bf16_tensor(const std::string& name, Shape shape, const std::vector<float>& v) {
  Tensor t = Tensor::zeros(DType::BF16, std::move(shape), name);
  for (size_t i = 0; i < v.size(); ++i)
    static_cast<uint16_t*>(t.mutable_data())[i] = f32_to_bf16(v[i]);
  return t;
}

// One linear as compressed-tensors parts; `expected` gets its dequantised [out, in] values.
inline std::vector<Tensor> ct_layer(const std::string& p, const Tensor& w, const CtOptions& o,
                                    std::mt19937& rng, std::vector<float>& expected) {
  const int64_t out = w.dim(0), in = w.dim(1);
  const float* v = w.as<float>();
  std::vector<Tensor> parts;
  expected.assign(size_t(out * in), 0);
  if (o.format == CtFormat::FloatQuantized) {  // random e4m3 codes, one scale per 16x16 block
    const int64_t bh = 16, bw = 16, br = (out + bh - 1) / bh, bc = (in + bw - 1) / bw;
    std::vector<float> scale(size_t(br * bc));
    for (float& s : scale)
      s = bf16_to_f32(f32_to_bf16(std::ldexp(1.0f + float(rng() % 100) / 100, -8)));
    Tensor q = Tensor::zeros(DType::F8_E4M3, {out, in}, p + ".weight");
    auto* qb = static_cast<uint8_t*>(q.mutable_data());
    for (int64_t o2 = 0; o2 < out; ++o2)
      for (int64_t i = 0; i < in; ++i) {
        uint8_t b = uint8_t(rng());
        if ((b & 0x7f) == 0x7f) b ^= 1;  // not NaN
        qb[o2 * in + i] = b;
        expected[size_t(o2 * in + i)] =
            bf16_to_f32(f32_to_bf16(e4m3_value(b) * scale[size_t(o2 / bh * bc + i / bw)]));
      }
    parts.push_back(q);
    parts.push_back(bf16_tensor(p + ".weight_scale", {br, bc}, scale));
    return parts;
  }
  const int b = o.format == CtFormat::IntQuantized ? 8 : o.bits;
  const int qmin = -(1 << (b - 1)), qmax = (1 << (b - 1)) - 1;
  const int64_t gs = o.group_size > 0 ? o.group_size : in, groups = (in + gs - 1) / gs;
  std::vector<int64_t> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), 0);
  if (o.act_order) std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> g_idx(static_cast<size_t>(in));
  for (int64_t j = 0; j < in; ++j) g_idx[size_t(perm[size_t(j)])] = int32_t(j / gs);
  std::vector<float> scale(size_t(out * groups));
  std::vector<int32_t> zp(size_t(out * groups), 0), q(size_t(out * in));
  for (int64_t r = 0; r < out; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      float lo = 0, hi = 0;
      for (int64_t i = 0; i < in; ++i)
        if (g_idx[size_t(i)] == g)
          lo = std::min(lo, v[r * in + i]), hi = std::max(hi, v[r * in + i]);
      float s = o.symmetric ? std::max(-lo, hi) / float(qmax) : (hi - lo) / float(qmax - qmin);
      s = std::max(s, 1e-6f);
      s = o.f16_scales ? f16_to_f32(f32_to_f16(s)) : bf16_to_f32(f32_to_bf16(s));
      const int z =
          o.symmetric ? 0 : std::clamp(int(std::nearbyint(float(qmin) - lo / s)), qmin, qmax);
      scale[size_t(r * groups + g)] = s, zp[size_t(r * groups + g)] = z;
      for (int64_t i = 0; i < in; ++i) {
        if (g_idx[size_t(i)] != g) continue;
        const int qi = std::clamp(int(std::nearbyint(v[r * in + i] / s)) + z, qmin, qmax);
        q[size_t(r * in + i)] = qi;
        const float e = float(qi - z) * s;
        expected[size_t(r * in + i)] = o.f16_scales ? f16_to_f32(f32_to_f16(e)) : bf16_to_f32(f32_to_bf16(e));
      }
    }
  if (o.format == CtFormat::IntQuantized) {
    Tensor t = Tensor::zeros(DType::I8, {out, in}, p + ".weight");
    for (size_t i = 0; i < q.size(); ++i) static_cast<int8_t*>(t.mutable_data())[i] = int8_t(q[i]);
    parts.push_back(t);
  } else {
    std::vector<uint32_t> u(q.size());
    for (size_t i = 0; i < q.size(); ++i) u[i] = uint32_t(q[i] - qmin);  // + 2^(b−1)
    int64_t words = 0;
    const auto packed = ct_pack_rows(u, out, in, b, o.stream, &words);
    parts.push_back(i32_tensor(p + ".weight_packed", {out, words}, packed));
    Tensor shape = Tensor::zeros(DType::I64, {2}, p + ".weight_shape");
    static_cast<int64_t*>(shape.mutable_data())[0] = out;
    static_cast<int64_t*>(shape.mutable_data())[1] = in;
    parts.push_back(shape);
  }
  if (o.f16_scales) {
    Tensor t = Tensor::zeros(DType::F16, {out, groups}, p + ".weight_scale");
    for (size_t i = 0; i < scale.size(); ++i)
      static_cast<uint16_t*>(t.mutable_data())[i] = f32_to_f16(scale[i]);
    parts.push_back(t);
  } else {
    parts.push_back(bf16_tensor(p + ".weight_scale", {out, groups}, scale));
  }
  if (!o.symmetric) {
    if (o.format == CtFormat::IntQuantized) {
      Tensor t = Tensor::zeros(DType::I8, {out, groups}, p + ".weight_zero_point");
      for (size_t i = 0; i < zp.size(); ++i)
        static_cast<int8_t*>(t.mutable_data())[i] = int8_t(zp[i]);
      parts.push_back(t);
    } else {  // transposed, packed along out, transposed back: [words, groups]
      std::vector<uint32_t> zt(size_t(groups * out));
      for (int64_t r = 0; r < out; ++r)
        for (int64_t g = 0; g < groups; ++g)
          zt[size_t(g * out + r)] = uint32_t(zp[size_t(r * groups + g)] - qmin);
      int64_t words = 0;
      const auto packed = ct_pack_rows(zt, groups, out, b, o.stream, &words);
      std::vector<uint32_t> back(size_t(words * groups));
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t k = 0; k < words; ++k)
          back[size_t(k * groups + g)] = packed[size_t(g * words + k)];
      parts.push_back(i32_tensor(p + ".weight_zero_point", {words, groups}, back));
    }
  }
  if (o.act_order) {
    std::vector<uint32_t> g(g_idx.begin(), g_idx.end());
    parts.push_back(i32_tensor(p + ".weight_g_idx", {in}, g));
  }
  return parts;
}

// checkpoint_config()'s tiny llama in `dir`, every linear stored as `o` says.
inline Written write_ct_checkpoint(const std::filesystem::path& dir, const CtOptions& o) {
  Written out;
  out.dir = dir;
  out.dense = random_llama(checkpoint_config(), 17);
  save_llama_hf(out.dense, dir.string());
  std::mt19937 rng(9);
  std::vector<Tensor> tensors;
  for (auto& [name, t] : out.dense.named_tensors()) {
    if (name.find("_proj.weight") == std::string::npos) {
      tensors.push_back(*t);
      continue;
    }
    std::vector<float> expected;
    for (Tensor& p : ct_layer(name.substr(0, name.size() - 7), *t, o, rng, expected))
      tensors.push_back(p);
    out.expected[name] = expected;
    *t = Tensor::from_f32(expected, t->shape(), name);
  }
  write_safetensors((dir / "model.safetensors").string(), tensors);
  nlohmann::ordered_json config;
  std::ifstream(dir / "config.json") >> config;
  const bool fp = o.format == CtFormat::FloatQuantized;
  nlohmann::ordered_json weights = {
      {"num_bits", o.format == CtFormat::PackQuantized ? o.bits : 8},
      {"type", fp ? "float" : "int"},
      {"symmetric", o.symmetric},
      {"strategy", fp                 ? "block"
                   : o.group_size > 0 ? "group"
                                      : "channel"},
      {"group_size", o.group_size > 0 && !fp ? nlohmann::ordered_json(o.group_size) : nullptr},
      {"block_structure", fp ? nlohmann::ordered_json({16, 16}) : nullptr},
      {"actorder", o.act_order ? nlohmann::ordered_json("group") : nlohmann::ordered_json()}};
  config["quantization_config"] = {
      {"quant_method", "compressed-tensors"},
      {"format", o.format == CtFormat::PackQuantized ? "pack-quantized"
                 : fp                                ? "float-quantized"
                                                     : "int-quantized"},
      {"quantization_status", "compressed"},
      {"config_groups", {{"group_0", {{"targets", {"Linear"}}, {"weights", weights}}}}},
      {"ignore", {"lm_head"}}};
  std::ofstream(dir / "config.json") << config.dump(2);
  return out;
}

}  // namespace mcw::test
