#include "engine/io/quantized_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/io/checkpoint_parts.h"

namespace mcw {
namespace {

// AutoAWQ packs output 8j + k of a word at nibble kAwqNibble[k] (its reverse order of
// (0, 2, 4, 6, 1, 3, 5, 7)).
constexpr int kAwqNibble[8] = {0, 4, 1, 5, 2, 6, 3, 7};

class CheckpointDecoder final : public TensorDecoder {
 public:
  CheckpointDecoder(const QuantizedCheckpointConfig& cfg, int64_t out, int64_t in, Tensor qweight,
                    Tensor qzeros, Tensor scales, Tensor g_idx)
      : cfg_(cfg),
        out_(out),
        in_(in),
        gs_(cfg.group_size < 0 ? in : cfg.group_size),
        groups_((in + gs_ - 1) / gs_),
        qweight_(std::move(qweight)),
        qzeros_(std::move(qzeros)),
        scales_(std::move(scales)),
        g_idx_(std::move(g_idx)) {
    const bool f16_or_f32 = scales_.dtype() == DType::F16 || scales_.dtype() == DType::F32;
    const bool awq = cfg_.method == QuantizedCheckpointConfig::Method::Awq;
    if (f16_or_f32 && ((!awq && 32 % cfg_.bits == 0 && in_ % (32 / cfg_.bits) == 0) ||
                       (awq && cfg_.bits == 4 && out_ % 8 == 0))) {
      ColumnPackedCodes& c = layout_.emplace();
      c.bits = cfg_.bits, c.out = out_, c.in = in_, c.group_size = gs_, c.groups = groups_;
      c.qweight = static_cast<const uint32_t*>(qweight_.data());
      c.g_idx = g_idx_.empty() ? nullptr : static_cast<const int32_t*>(g_idx_.data());
      c.scale_dtype = scales_.dtype(), c.scales = scales_.data();
      c.qzeros = static_cast<const uint32_t*>(qzeros_.data()), c.zero_words = qzeros_.dim(1);
      c.zero_offset = cfg_.zeros_minus_one ? 1.0f : 0.0f;
      c.awq = awq;
    }
  }

  // GPTQ at 2, 4 or 8 bits and AWQ with f16 or f32 scales: small-m products read the codes.
  const ColumnPackedCodes* column_packed() const override {
    return layout_ ? &*layout_ : nullptr;
  }

  // Row by row: the row's scales and zero points per group first, then the codes (GPTQ
  // at 2, 4 or 8 bits a whole word at a time), then one batch rounding to the scales'
  // dtype (F16C/AVX-512 conversions), so a code costs a shift, a mask and a multiply-add.
  void decode(size_t first, size_t count, float* dst) const override {
    const bool whole_rows = first % size_t(in_) == 0 && count % size_t(in_) == 0;
    if (whole_rows && cfg_.method == QuantizedCheckpointConfig::Method::Gptq && 32 % cfg_.bits == 0)
      return decode_gptq_rows(int64_t(first / size_t(in_)), int64_t(count / size_t(in_)), dst);
    if (whole_rows && cfg_.method == QuantizedCheckpointConfig::Method::Awq)
      return decode_awq_rows(int64_t(first / size_t(in_)), int64_t(count / size_t(in_)), dst);
    std::vector<float> s(static_cast<size_t>(groups_)), z(static_cast<size_t>(groups_));
    for (size_t done = 0; done < count;) {
      const int64_t o = int64_t((first + done) / size_t(in_));
      const int64_t i0 = int64_t((first + done) % size_t(in_));
      const int64_t i1 = std::min<int64_t>(in_, i0 + int64_t(count - done));
      row_parameters(o, s.data(), z.data());
      decode_row(o, i0, i1, s.data(), z.data(), dst);
      dst += i1 - i0;
      done += size_t(i1 - i0);
    }
  }

  QuantizedCheckpointConfig scheme() const {
    QuantizedCheckpointConfig c = cfg_;
    c.group_size = gs_;
    c.act_order = cfg_.act_order && !g_idx_.empty();
    return c;
  }

  // A 64-byte line of qweight covers 16 outputs (GPTQ: one word each; AWQ: two words of 8).
  int64_t row_granularity() const override { return 16; }

  std::string describe() const override {
    std::string d = cfg_.method == QuantizedCheckpointConfig::Method::Awq ? "AWQ" : "GPTQ";
    d += " int" + std::to_string(cfg_.bits) + " g" + std::to_string(gs_);
    d += cfg_.symmetric ? " sym" : " asym";
    if (scheme().act_order) d += ", act-order";
    return d;
  }

 private:
  void row_parameters(int64_t o, float* s, float* z) const {
    const auto* qz = static_cast<const uint32_t*>(qzeros_.data());
    const int64_t words = qzeros_.dim(1);
    const bool awq = cfg_.method == QuantizedCheckpointConfig::Method::Awq;
    const float offset = cfg_.zeros_minus_one ? 1.0f : 0.0f;
    for (int64_t g = 0; g < groups_; ++g) {
      s[g] = scale_value(scales_.dtype(), scales_.data(), g * out_ + o);
      const uint32_t zq = awq ? (qz[g * words + o / 8] >> (4 * kAwqNibble[o % 8])) & 15u
                              : stream_code(qz + g * words, 1, o, cfg_.bits);
      z[g] = float(zq) + offset;
    }
  }

  void decode_row(int64_t o, int64_t i0, int64_t i1, const float* s, const float* z,
                  float* dst) const {
    const auto* qw = static_cast<const uint32_t*>(qweight_.data());
    const auto* gi = g_idx_.empty() ? nullptr : static_cast<const int32_t*>(g_idx_.data());
    const int bits = cfg_.bits;
    const uint32_t mask = (1u << bits) - 1;
    const DType t = scales_.dtype();
    const auto group = [&](int64_t i) { return gi ? int64_t(gi[i]) : i / gs_; };
    if (cfg_.method == QuantizedCheckpointConfig::Method::Awq) {
      const int64_t stride = out_ / 8, shift = 4 * kAwqNibble[o % 8];
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t g = group(i);
        *dst++ = round_to_dtype(t, s[g] * (float((qw[i * stride + o / 8] >> shift) & 15u) - z[g]));
      }
      return;
    }
    if (32 % bits) {  // 3 bits: codes straddle words
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t g = group(i);
        *dst++ = round_to_dtype(t, s[g] * (float(stream_code(qw + o, out_, i, bits)) - z[g]));
      }
      return;
    }
    const int per = 32 / bits;
    for (int64_t i = i0; i < i1;) {
      const uint32_t word = qw[(i / per) * out_ + o];
      for (int k = int(i % per); k < per && i < i1; ++k, ++i) {
        const int64_t g = group(i);
        *dst++ = round_to_dtype(t, s[g] * (float((word >> (k * bits)) & mask) - z[g]));
      }
    }
  }

  // GPTQ stores a row's codes down a column of qweight (a word every `out` words): walking
  // one row touches a new page per word. Whole rows are decoded up to 64 at a time, word
  // row by word row, so each read takes 64 neighbouring words from one cache line run.
  void decode_gptq_rows(int64_t o0, int64_t rows, float* dst) const {
    constexpr int64_t kBlock = 64;
    const auto* qw = static_cast<const uint32_t*>(qweight_.data());
    const auto* gi = g_idx_.empty() ? nullptr : static_cast<const int32_t*>(g_idx_.data());
    const int bits = cfg_.bits, per = 32 / bits;
    const uint32_t mask = (1u << bits) - 1;
    const DType t = scales_.dtype();
    std::vector<float> s(size_t(kBlock * groups_)), z(size_t(kBlock * groups_));
    for (int64_t b0 = 0; b0 < rows; b0 += kBlock) {
      const int64_t n = std::min(kBlock, rows - b0);
      for (int64_t r = 0; r < n; ++r)
        row_parameters(o0 + b0 + r, s.data() + r * groups_, z.data() + r * groups_);
      for (int64_t w = 0; w < in_ / per; ++w) {
        const uint32_t* words = qw + w * out_ + o0 + b0;
        const int64_t i0 = w * per, g0 = i0 / gs_;
        const bool one_group = !gi && (i0 + per - 1) / gs_ == g0;  // the usual case
        for (int64_t r = 0; r < n; ++r) {
          const float* sr = s.data() + r * groups_;
          const float* zr = z.data() + r * groups_;
          float* out = dst + (b0 + r) * in_ + i0;
          if (one_group) {
            const float sg = sr[g0], zg = zr[g0];
            for (int k = 0; k < per; ++k)
              out[k] = round_to_dtype(t, sg * (float((words[r] >> (k * bits)) & mask) - zg));
            continue;
          }
          for (int k = 0; k < per; ++k) {
            const int64_t i = i0 + k, g = gi ? int64_t(gi[i]) : i / gs_;
            out[k] = round_to_dtype(t, sr[g] * (float((words[r] >> (k * bits)) & mask) - zr[g]));
          }
        }
      }
    }
  }

  // AWQ packs a row's codes along the outputs, one word per 8 rows at every input: whole
  // rows are decoded up to 64 at a time, input by input, from 8 neighbouring words.
  void decode_awq_rows(int64_t o0, int64_t rows, float* dst) const {
    constexpr int64_t kBlock = 64;
    const auto* qw = static_cast<const uint32_t*>(qweight_.data());
    const int64_t stride = out_ / 8;
    const DType t = scales_.dtype();
    std::vector<float> s(size_t(kBlock * groups_)), z(size_t(kBlock * groups_));
    std::vector<int> shift(kBlock);
    for (int64_t b0 = 0; b0 < rows; b0 += kBlock) {
      const int64_t n = std::min(kBlock, rows - b0);
      for (int64_t r = 0; r < n; ++r) {
        row_parameters(o0 + b0 + r, s.data() + r * groups_, z.data() + r * groups_);
        shift[size_t(r)] = 4 * kAwqNibble[(o0 + b0 + r) % 8];
      }
      for (int64_t i = 0; i < in_; ++i) {
        const uint32_t* words = qw + i * stride;
        const int64_t g = i / gs_;
        for (int64_t r = 0; r < n; ++r) {
          const int64_t o = o0 + b0 + r;
          const float q = float((words[o / 8] >> shift[size_t(r)]) & 15u);
          dst[(b0 + r) * in_ + i] = round_to_dtype(t, s[size_t(r * groups_ + g)] * (q - z[size_t(r * groups_ + g)]));
        }
      }
    }
  }

  QuantizedCheckpointConfig cfg_;
  int64_t out_, in_, gs_, groups_;
  Tensor qweight_, qzeros_, scales_, g_idx_;
  std::optional<ColumnPackedCodes> layout_;
};

struct Parts {
  const Tensor *qweight = nullptr, *qzeros = nullptr, *scales = nullptr, *g_idx = nullptr;
};

Tensor present(const ModelFile& m, const std::string& prefix, const Parts& p,
               const QuantizedCheckpointConfig& cfg) {
  const auto fail = [&](const std::string& part, const std::string& why) {
    return Error(m.path, "tensor '" + prefix + "." + part + "' " + why);
  };
  for (auto [t, part] : {std::pair{p.qzeros, "qzeros"}, {p.scales, "scales"}})
    if (!t) throw fail(part, "is missing (the layer has a qweight)");
  for (auto [t, part] : {std::pair{p.qweight, "qweight"}, {p.qzeros, "qzeros"}, {p.g_idx, "g_idx"}})
    if (t && t->dtype() != DType::I32)
      throw fail(part, "has dtype " + std::string(dtype_name(t->dtype())) + ", expected I32");
  if (p.scales->dtype() != DType::F16 && p.scales->dtype() != DType::BF16 &&
      p.scales->dtype() != DType::F32)
    throw fail("scales", "has dtype " + std::string(dtype_name(p.scales->dtype())) +
                             ", expected F16, BF16 or F32");
  for (auto [t, part] :
       {std::pair{p.qweight, "qweight"}, {p.qzeros, "qzeros"}, {p.scales, "scales"}})
    if (t->ndim() != 2 || t->dim(0) <= 0 || t->dim(1) <= 0)
      throw fail(part, "has shape " + shape_string(t->shape()) + ", expected a 2-D array");

  const bool awq = cfg.method == QuantizedCheckpointConfig::Method::Awq;
  const int bits = cfg.bits;
  // 32 codes fill `bits` words exactly, so whole rows of codes are whole words.
  const int64_t out = awq ? p.qweight->dim(1) * (32 / bits) : p.qweight->dim(1);
  if (!awq && p.qweight->dim(0) % bits)
    throw fail("qweight", "has " + std::to_string(p.qweight->dim(0)) +
                              " rows, not a whole number of " + std::to_string(bits) +
                              "-word packs of 32 codes");
  const int64_t in = awq ? p.qweight->dim(0) : p.qweight->dim(0) / bits * 32;
  const int64_t gs = cfg.group_size < 0 ? in : cfg.group_size;
  const int64_t groups = (in + gs - 1) / gs;
  if (awq && in % gs)
    throw fail("qweight", "has " + std::to_string(in) +
                              " inputs, not a whole number of groups of " + std::to_string(gs));
  if (out % 32 && !awq)
    throw fail("qweight", "has " + std::to_string(out) + " outputs, not a multiple of 32");
  const Shape zeros_want = {groups, out * bits / 32}, scales_want = {groups, out};
  if (p.qzeros->shape() != zeros_want)
    throw fail("qzeros", "has shape " + shape_string(p.qzeros->shape()) + ", expected " +
                             shape_string(zeros_want) + " for " + std::to_string(out) + "x" +
                             std::to_string(in) + " at group size " + std::to_string(gs));
  if (p.scales->shape() != scales_want)
    throw fail("scales", "has shape " + shape_string(p.scales->shape()) + ", expected " +
                             shape_string(scales_want));
  Tensor g_idx;
  if (p.g_idx && !awq) {
    if (p.g_idx->shape() != Shape{in})
      throw fail("g_idx", "has shape " + shape_string(p.g_idx->shape()) + ", expected [" +
                              std::to_string(in) + "]");
    const auto* g = static_cast<const int32_t*>(p.g_idx->data());
    bool in_order = true;
    for (int64_t i = 0; i < in; ++i) {
      if (g[i] < 0 || g[i] >= groups)
        throw fail("g_idx", "gives column " + std::to_string(i) + " group " + std::to_string(g[i]) +
                                ", outside 0.." + std::to_string(groups - 1));
      in_order = in_order && g[i] == i / gs;
    }
    // AutoGPTQ writes g_idx without act-order too (input / group_size): dropped, so that the
    // products take the paths for groups of consecutive inputs.
    if (!in_order) g_idx = *p.g_idx;
  }
  const size_t bytes = p.qweight->nbytes() + p.qzeros->nbytes() + p.scales->nbytes() +
                       (g_idx.empty() ? 0 : g_idx.nbytes());
  return Tensor::decoded(
      {out, in},
      std::make_shared<CheckpointDecoder>(cfg, out, in, *p.qweight, *p.qzeros, *p.scales, g_idx),
      bytes, prefix + ".weight");
}

}  // namespace

std::optional<QuantizedCheckpointConfig> quantized_checkpoint_config(
    const nlohmann::ordered_json& hparams, const std::string& path) {
  const auto* q = hparams.is_object() ? member(hparams, "quantization_config") : nullptr;
  if (!q) return std::nullopt;
  if (!q->is_object()) throw Error(path, "quantization_config is not an object");
  const std::string method = string_member(*q, "quant_method", "", path);
  QuantizedCheckpointConfig c;
  if (method == "gptq") {
    c.method = QuantizedCheckpointConfig::Method::Gptq;
    c.bits = int(int_member(*q, "bits", 4, path));
    if (c.bits != 2 && c.bits != 3 && c.bits != 4 && c.bits != 8)
      throw Error(path, "GPTQ checkpoint with " + std::to_string(c.bits) +
                            "-bit weights: MCW reads 2, 3, 4 and 8 bits");
    c.act_order = bool_member(*q, "desc_act", false, path);
    c.symmetric = bool_member(*q, "sym", true, path);
    const std::string fmt = string_member(*q, "checkpoint_format", "gptq", path);
    if (fmt != "gptq" && fmt != "gptq_v2")
      throw Error(path, "GPTQ checkpoint_format '" + fmt +
                            "' is not read (MCW reads gptq and gptq_v2 layouts)");
    c.zeros_minus_one = fmt == "gptq";
  } else if (method == "awq") {
    c.method = QuantizedCheckpointConfig::Method::Awq;
    c.bits = int(int_member(*q, "bits", int_member(*q, "w_bit", 4, path), path));
    if (c.bits != 4)
      throw Error(path, "AWQ checkpoint with " + std::to_string(c.bits) +
                            "-bit weights: AutoAWQ's GEMM layout holds 4 bits");
    const std::string version = string_member(*q, "version", "gemm", path);
    if (version != "gemm" && version != "GEMM")
      throw Error(path, "AWQ version '" + version + "' is not read (MCW reads the gemm layout)");
    c.symmetric = !bool_member(*q, "zero_point", true, path);
    c.zeros_minus_one = false;
  } else {
    throw Error(path, "quantization_config.quant_method '" + method +
                          "' is not read (MCW reads gptq, awq and compressed-tensors checkpoints)");
  }
  c.group_size = int_member(*q, "group_size", int_member(*q, "q_group_size", 128, path), path);
  if (c.group_size == 0 || c.group_size < -1 || c.group_size > (int64_t(1) << 24))
    throw Error(path, "quantization_config.group_size " + std::to_string(c.group_size) +
                          " is not a group size (−1 or a positive count)");
  return c;
}

std::optional<QuantizedCheckpointConfig> checkpoint_layer_scheme(const Tensor& weight) {
  const auto* d = dynamic_cast<const CheckpointDecoder*>(weight.decoder());
  if (!d) return std::nullopt;
  return d->scheme();
}

void present_quantized_layers(ModelFile& model, const QuantizedCheckpointConfig& cfg) {
  static constexpr const char* kParts[] = {"qweight", "qzeros", "scales", "g_idx"};
  std::map<std::string, Parts> layers;  // by prefix
  std::vector<std::string> part_of(model.tensors.size());  // the layer a part belongs to
  for (size_t k = 0; k < model.tensors.size(); ++k) {
    const std::string& name = model.tensors[k].name();
    const size_t dot = name.rfind('.');
    if (dot == std::string::npos) continue;
    const std::string part = name.substr(dot + 1);
    if (std::find(std::begin(kParts), std::end(kParts), part) == std::end(kParts)) continue;
    part_of[k] = name.substr(0, dot);
    Parts& p = layers[part_of[k]];
    const Tensor* t = &model.tensors[k];
    (part == "qweight"  ? p.qweight
     : part == "qzeros" ? p.qzeros
     : part == "scales" ? p.scales
                        : p.g_idx) = t;
  }
  std::map<std::string, Tensor> presented;
  for (const auto& [prefix, p] : layers) {
    if (!p.qweight) continue;  // a `scales` of some other module: not a quantised linear
    if (model.find(prefix + ".weight"))
      throw Error(model.path, "tensor '" + prefix + ".weight' exists beside '" + prefix +
                                  ".qweight': which one is the layer?");
    presented.emplace(prefix, present(model, prefix, p, cfg));
  }
  replace_layer_parts(model, part_of, presented);
}

}  // namespace mcw
