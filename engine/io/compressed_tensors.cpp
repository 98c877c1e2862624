#include "engine/io/compressed_tensors.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/io/checkpoint_parts.h"
#include "engine/io/sparse24_bitmask.h"

namespace mcw {
namespace {

enum class Coding { PackedInt, Int8, Fp8 };
enum class Strategy { Tensor, Channel, Group, Block };
enum class Zeros { None, PackedI32, RawI8 };

struct Layer {
  Coding coding = Coding::PackedInt;
  int bits = 8;
  bool stream = false;  // 0.18+ packing: one bitstream per row (differs for 3/5/6/7 bits)
  int64_t out = 0, in = 0, words = 0;  // words: packed row length
  Strategy strategy = Strategy::Tensor;
  int64_t group_size = 0, groups = 1, bh = 1, bw = 1;
  Zeros zeros = Zeros::None;
  int64_t zero_rows = 0;  // packed zero points: rows of words along out
  Tensor q, scale, zero, g_idx;
};

// Values the config's groups give for the weights (num_bits, group_size, block sizes).
struct ConfigHints {
  std::set<int> bits;
  std::set<int64_t> group_sizes;
  std::set<std::pair<int64_t, int64_t>> blocks;
};

ConfigHints hints(const nlohmann::ordered_json& cfg) {
  ConfigHints h;
  const auto* groups = member(cfg, "config_groups");
  if (!groups || !groups->is_object()) return h;
  for (const auto& [name, g] : groups->items()) {
    const auto* w = g.is_object() ? member(g, "weights") : nullptr;
    if (!w || !w->is_object()) continue;
    if (const auto* b = member(*w, "num_bits"); b && b->is_number_integer())
      h.bits.insert(b->get<int>());
    if (const auto* s = member(*w, "group_size"); s && s->is_number_integer())
      h.group_sizes.insert(s->get<int64_t>());
    if (const auto* bs = member(*w, "block_structure"); bs && bs->is_array() && bs->size() == 2 &&
                                                        (*bs)[0].is_number_integer() &&
                                                        (*bs)[1].is_number_integer())
      h.blocks.insert({(*bs)[0].get<int64_t>(), (*bs)[1].get<int64_t>()});
  }
  return h;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

class CtDecoder final : public TensorDecoder {
 public:
  explicit CtDecoder(Layer l) : l_(std::move(l)) {
    // Group or channel scales on packed codes that never straddle a word, f16 or f32
    // scales, no act-order: whole rows decode word by word, and small-m products read
    // the codes in place.
    const bool simple_scales = l_.strategy == Strategy::Group || l_.strategy == Strategy::Channel;
    if (l_.coding == Coding::PackedInt && 32 % l_.bits == 0 && simple_scales &&
        l_.g_idx.empty() && l_.zeros != Zeros::RawI8 &&
        (l_.scale.dtype() == DType::F16 || l_.scale.dtype() == DType::F32)) {
      RowPackedCodes& c = layout_.emplace();
      c.bits = l_.bits, c.out = l_.out, c.in = l_.in, c.words = l_.words;
      c.groups = l_.strategy == Strategy::Group ? l_.groups : 1;
      c.group_size = l_.strategy == Strategy::Group ? l_.group_size : l_.in;
      c.q = static_cast<const uint32_t*>(l_.q.data());
      c.scale_dtype = l_.scale.dtype();
    }
  }

  const RowPackedCodes* row_packed() const override { return layout_ ? &*layout_ : nullptr; }

  // Called once per output row by the products: the row's f16 scales are widened in one
  // run (the per-value conversion took 40 % of a 4-bit product at m = 1).
  void row_parameters(int64_t o, float* scale, int32_t* zero_code) const override {
    const int half = 1 << (l_.bits - 1), per_word = 32 / l_.bits;
    const int64_t groups = layout_->groups;
    if (l_.strategy == Strategy::Group && l_.scale.dtype() == DType::F16)
      f16_to_f32_row(static_cast<const uint16_t*>(l_.scale.data()) + o * l_.groups, scale,
                     size_t(groups));
    else
      for (int64_t g = 0; g < groups; ++g)
        scale[g] = scale_value(l_.scale.dtype(), l_.scale.data(),
                               l_.strategy == Strategy::Group ? o * l_.groups + g : o);
    for (int64_t g = 0; g < groups; ++g)
      zero_code[g] = l_.zeros == Zeros::None ? half : int32_t(zero_code_at(o, g, per_word));
  }

  void decode(size_t first, size_t count, float* dst) const override {
    if (layout_ && first % size_t(l_.in) == 0 && count % size_t(l_.in) == 0)
      return decode_rows(int64_t(first / size_t(l_.in)), int64_t(count / size_t(l_.in)), dst);
    const auto* g_idx = l_.g_idx.empty() ? nullptr : static_cast<const int32_t*>(l_.g_idx.data());
    const int b = l_.bits, half = 1 << (b - 1), per_word = 32 / b;
    for (size_t done = 0; done < count;) {
      const int64_t o = int64_t((first + done) / size_t(l_.in));
      const int64_t i0 = int64_t((first + done) % size_t(l_.in));
      const int64_t i1 = std::min<int64_t>(l_.in, i0 + int64_t(count - done));
      for (int64_t i = i0; i < i1; ++i) *dst++ = value(o, i, g_idx, half, per_word);
      done += size_t(i1 - i0);
    }
  }

  std::string describe() const override {
    std::string d = l_.coding == Coding::Fp8 ? "compressed-tensors fp8"
                                             : "compressed-tensors int" + std::to_string(l_.bits);
    switch (l_.strategy) {
      case Strategy::Tensor:
        d += " per tensor";
        break;
      case Strategy::Channel:
        d += " per channel";
        break;
      case Strategy::Group:
        d += " g" + std::to_string(l_.group_size);
        break;
      case Strategy::Block:
        d += " block " + std::to_string(l_.bh) + "x" + std::to_string(l_.bw);
        break;
    }
    if (l_.coding != Coding::Fp8) d += l_.zeros == Zeros::None ? " sym" : " asym";
    if (!l_.g_idx.empty()) d += ", act-order";
    return d;
  }

 private:
  float value(int64_t o, int64_t i, const int32_t* g_idx, int half, int per_word) const {
    int64_t s_index = 0, g = 0;
    switch (l_.strategy) {
      case Strategy::Tensor:
        break;
      case Strategy::Channel:
        s_index = o;
        break;
      case Strategy::Group:
        g = g_idx ? g_idx[i] : i / l_.group_size;
        s_index = o * l_.groups + g;
        break;
      case Strategy::Block:
        s_index = (o / l_.bh) * ceil_div(l_.in, l_.bw) + i / l_.bw;
        break;
    }
    const float s = scale_value(l_.scale.dtype(), l_.scale.data(), s_index);
    float q = 0;
    if (l_.coding == Coding::Fp8) {
      to_f32(DType::F8_E4M3, static_cast<const uint8_t*>(l_.q.data()) + o * l_.in + i, &q, 1);
    } else if (l_.coding == Coding::Int8) {
      q = float(static_cast<const int8_t*>(l_.q.data())[o * l_.in + i]);
    } else {
      const auto* row = static_cast<const uint32_t*>(l_.q.data()) + o * l_.words;
      const uint32_t u =
          l_.stream ? stream_code(row, 1, i, l_.bits)
                    : (row[i / per_word] >> (i % per_word * l_.bits)) & ((1u << l_.bits) - 1);
      q = float(int(u) - half);
    }
    float z = 0;
    if (l_.zeros == Zeros::RawI8)
      z = float(static_cast<const int8_t*>(l_.zero.data())[s_index]);
    else if (l_.zeros == Zeros::PackedI32)
      z = float(int(zero_code_at(o, g, per_word)) - half);
    return round_to_dtype(l_.scale.dtype(), (q - z) * s);
  }

  // Packed zero points lie along out: column g, a stream over the rows (or words of them).
  uint32_t zero_code_at(int64_t o, int64_t g, int per_word) const {
    const auto* col = static_cast<const uint32_t*>(l_.zero.data()) + g;
    const int64_t cols = l_.zero.dim(1);
    return l_.zero_rows == ceil_div(l_.out * l_.bits, 32)
               ? stream_code(col, cols, o, l_.bits)
               : (col[(o / per_word) * cols] >> (o % per_word * l_.bits)) & ((1u << l_.bits) - 1);
  }

  // Whole rows of the row-packed layout: the row's parameters once, then word by word
  // (the same (code − zero)·scale, rounded, as value()).
  void decode_rows(int64_t o0, int64_t rows, float* dst) const {
    const RowPackedCodes& c = *layout_;
    const int per = 32 / c.bits;
    const uint32_t mask = (1u << c.bits) - 1;
    std::vector<float> scale(size_t(c.groups));
    std::vector<int32_t> zero(size_t(c.groups));
    for (int64_t o = o0; o < o0 + rows; ++o, dst += c.in) {
      row_parameters(o, scale.data(), zero.data());
      const uint32_t* row = c.q + o * c.words;
      for (int64_t i = 0; i < c.in; ++i) {
        const int64_t g = i / c.group_size;
        const uint32_t u = (row[i / per] >> (i % per * c.bits)) & mask;
        dst[i] = round_to_dtype(c.scale_dtype, float(int32_t(u) - zero[size_t(g)]) * scale[size_t(g)]);
      }
    }
  }

  Layer l_;
  std::optional<RowPackedCodes> layout_;
};

struct Parts {
  const Tensor *packed = nullptr, *weight = nullptr, *shape = nullptr, *scale = nullptr,
               *zero = nullptr, *g_idx = nullptr;
  const Tensor *sparse_shape = nullptr, *compressed = nullptr, *bitmask = nullptr;  // sparse
};

// The sparsity_config's format ("sparse-24-bitmask", ...), empty when there is none.
std::string sparsity_format(const nlohmann::ordered_json& cfg, const std::string& config_path) {
  const auto* s = member(cfg, "sparsity_config");
  if (!s || !s->is_object() || s->empty()) return {};
  return string_member(*s, "format", "", config_path);
}

// The [out, in] a weight_shape tensor holds (I64 or I32, shape [2] or [2, 1]).
std::pair<int64_t, int64_t> stored_shape(const Tensor& t,
                                         const std::function<Error(std::string)>& fail) {
  if (t.numel() != 2 || (t.dtype() != DType::I64 && t.dtype() != DType::I32))
    throw fail("weight_shape is " + std::string(dtype_name(t.dtype())) + " " +
               shape_string(t.shape()) + ", expected two integers");
  const auto at = [&](int k) {
    return t.dtype() == DType::I64 ? static_cast<const int64_t*>(t.data())[k]
                                   : int64_t(static_cast<const int32_t*>(t.data())[k]);
  };
  if (at(0) <= 0 || at(1) <= 0 || at(0) > (int64_t(1) << 31) || at(1) > (int64_t(1) << 31))
    throw fail("weight_shape [" + std::to_string(at(0)) + ", " + std::to_string(at(1)) +
               "] is not a matrix shape");
  return {at(0), at(1)};
}

Tensor present(const ModelFile& m, const std::string& p, const Parts& parts, const ConfigHints& h) {
  const auto fail = [&](const std::string& why) {
    return Error(m.path, "layer '" + p + "': " + why);
  };
  Layer l;
  if (!parts.scale) throw fail("quantised weight without weight_scale");
  if (parts.packed) {
    if (!parts.shape) throw fail("weight_packed without weight_shape");
    if (parts.packed->dtype() != DType::I32 || parts.packed->ndim() != 2)
      throw fail("weight_packed is " + std::string(dtype_name(parts.packed->dtype())) + " " +
                 shape_string(parts.packed->shape()) + ", expected a 2-D I32 array");
    std::tie(l.out, l.in) = stored_shape(*parts.shape, fail);
    l.words = parts.packed->dim(1);
    if (parts.packed->dim(0) != l.out)
      throw fail("weight_packed has " + std::to_string(parts.packed->dim(0)) +
                 " rows but weight_shape says " + std::to_string(l.out));
    // The width the config's num_bits give, in either packing; 8, 4, 2, 1 bits agree.
    int found = 0;
    for (int b : h.bits) {
      if (b < 1 || b > 8) continue;
      if (l.words == ceil_div(l.in, 32 / b))
        found = b, l.stream = false;
      else if (l.words == ceil_div(l.in * b, 32))
        found = b, l.stream = true;
      if (found) break;
    }
    if (!found)
      throw fail("weight_packed has " + std::to_string(l.words) + " words per row of " +
                 std::to_string(l.in) + " values, which no num_bits of the config gives");
    l.bits = found;
    l.q = *parts.packed;
  } else {
    const Tensor& w = *parts.weight;
    if (w.ndim() != 2) throw fail("weight has shape " + shape_string(w.shape()));
    l.coding = w.dtype() == DType::I8 ? Coding::Int8 : Coding::Fp8;
    l.out = w.dim(0), l.in = w.dim(1);
    l.q = w;
  }
  const Tensor& s = *parts.scale;
  if (s.dtype() != DType::F16 && s.dtype() != DType::BF16 && s.dtype() != DType::F32)
    throw fail("weight_scale has dtype " + std::string(dtype_name(s.dtype())) +
               ", expected F16, BF16 or F32");
  const int64_t s_rows = s.ndim() == 2 ? s.dim(0) : 1,
                s_cols = s.ndim() == 2 ? s.dim(1) : s.numel();
  if (s.numel() == 1) {
    l.strategy = Strategy::Tensor;
  } else if (s.ndim() == 2 && s_rows == l.out && s_cols == 1) {
    l.strategy = Strategy::Channel;
  } else if (s.ndim() == 2 && s_rows == l.out) {
    l.strategy = Strategy::Group, l.groups = s_cols;
    for (int64_t gs : h.group_sizes)
      if (gs > 0 && ceil_div(l.in, gs) == s_cols) l.group_size = gs;
    if (!l.group_size && l.in % s_cols == 0) l.group_size = l.in / s_cols;
    if (!l.group_size)
      throw fail("weight_scale has " + std::to_string(s_cols) + " groups per row of " +
                 std::to_string(l.in) + ", which no group_size of the config gives");
  } else if (s.ndim() == 2) {
    l.strategy = Strategy::Block;
    for (auto [bh, bw] : h.blocks)
      if (bh > 0 && bw > 0 && ceil_div(l.out, bh) == s_rows && ceil_div(l.in, bw) == s_cols)
        l.bh = bh, l.bw = bw;
    if (l.bh == 1 && l.bw == 1)
      throw fail("weight_scale has shape " + shape_string(s.shape()) +
                 ", which no strategy or block_structure of the config gives");
  } else {
    throw fail("weight_scale has shape " + shape_string(s.shape()));
  }
  l.scale = s;
  if (parts.zero) {
    const Tensor& z = *parts.zero;
    if (l.coding == Coding::Fp8) throw fail("an fp8 weight with a zero point");
    if (z.dtype() == DType::I8 && z.numel() == s.numel()) {
      l.zeros = Zeros::RawI8;
    } else if (z.dtype() == DType::I32 && z.ndim() == 2 &&
               z.dim(1) == (l.strategy == Strategy::Group ? l.groups : 1) &&
               (l.strategy == Strategy::Group || l.strategy == Strategy::Channel) &&
               (z.dim(0) == ceil_div(l.out, 32 / l.bits) ||
                z.dim(0) == ceil_div(l.out * l.bits, 32))) {
      l.zeros = Zeros::PackedI32, l.zero_rows = z.dim(0);
    } else {
      throw fail("weight_zero_point is " + std::string(dtype_name(z.dtype())) + " " +
                 shape_string(z.shape()) + ", which does not fit the scale " +
                 shape_string(s.shape()));
    }
    l.zero = z;
  }
  if (parts.g_idx) {
    const Tensor& g = *parts.g_idx;
    if (l.strategy != Strategy::Group || g.dtype() != DType::I32 || g.shape() != Shape{l.in})
      throw fail("weight_g_idx is " + std::string(dtype_name(g.dtype())) + " " +
                 shape_string(g.shape()) + " beside a scale of shape " + shape_string(s.shape()));
    const auto* v = static_cast<const int32_t*>(g.data());
    bool all_minus_one = true;  // compressed-tensors before 0.12 wrote −1 for "no g_idx"
    for (int64_t i = 0; i < l.in; ++i) all_minus_one &= v[i] == -1;
    if (!all_minus_one) {
      for (int64_t i = 0; i < l.in; ++i)
        if (v[i] < 0 || v[i] >= l.groups)
          throw fail("weight_g_idx gives column " + std::to_string(i) + " group " +
                     std::to_string(v[i]) + ", outside 0.." + std::to_string(l.groups - 1));
      l.g_idx = g;
    }
  }
  size_t bytes = l.q.nbytes() + l.scale.nbytes() + l.zero.nbytes() + l.g_idx.nbytes();
  const int64_t out = l.out, in = l.in;
  return Tensor::decoded({out, in}, std::make_shared<CtDecoder>(std::move(l)), bytes,
                         p + ".weight");
}

}  // namespace

const nlohmann::ordered_json* compressed_tensors_config(const nlohmann::ordered_json& hparams) {
  if (!hparams.is_object()) return nullptr;
  if (const auto* q = member(hparams, "quantization_config");
      q && q->is_object() &&
      string_member(*q, "quant_method", "", "config.json") == "compressed-tensors")
    return q;
  const auto* old = member(hparams, "compression_config");  // compressed-tensors before 0.7
  return old && old->is_object() ? old : nullptr;
}

void present_compressed_tensors(ModelFile& model, const nlohmann::ordered_json& config,
                                const std::string& config_path) {
  const ConfigHints h = hints(config);
  const std::string sparse_format = sparsity_format(config, config_path);
  std::map<std::string, Parts> layers;
  std::vector<std::string> part_of(model.tensors.size());  // the layer a part belongs to
  static const std::pair<const char*, const Tensor * Parts::*> kSuffixes[] = {
      {".weight_packed", &Parts::packed},   {".weight_shape", &Parts::shape},
      {".weight_scale", &Parts::scale},     {".weight_zero_point", &Parts::zero},
      {".weight_g_idx", &Parts::g_idx},     {".weight", &Parts::weight},
      {".compressed", &Parts::compressed},  {".bitmask", &Parts::bitmask},
      {".shape", &Parts::sparse_shape}};
  for (size_t k = 0; k < model.tensors.size(); ++k) {
    const Tensor& t = model.tensors[k];
    const std::string& name = t.name();
    if (name.size() > 8 && name.compare(name.size() - 8, 8, ".bitmask") == 0 &&
        sparse_format != "sparse-24-bitmask")
      throw Error(config_path,
                  "tensor '" + name + "': " +
                      (sparse_format.empty() ? std::string("a bitmask without a sparsity_config")
                                             : "sparsity format '" + sparse_format + "'") +
                      "; of compressed-tensors' sparse formats only sparse-24-bitmask is read "
                      "(sparse-bitmask is not yet)");
    for (const auto& [suffix, field] : kSuffixes) {
      const std::string sx = suffix;
      if (name.size() <= sx.size() || name.compare(name.size() - sx.size(), sx.size(), sx) != 0)
        continue;
      part_of[k] = name.substr(0, name.size() - sx.size());
      layers[part_of[k]].*field = &t;
      break;
    }
  }
  std::map<std::string, Tensor> presented;
  std::vector<Tensor> expanded;  // sparse-24 codes of quantised layers, owned
  expanded.reserve(layers.size());
  for (auto& [prefix, p] : layers) {
    if (p.bitmask || p.compressed) {
      if (p.weight || p.packed)
        throw Error(model.path, "layer '" + prefix + "' has both sparse-24-bitmask parts and a " +
                                    (p.weight ? "weight" : "weight_packed"));
      Tensor w = read_sparse24(model.path, prefix, p.sparse_shape, p.compressed, p.bitmask);
      if (w.dtype() == DType::Packed) {
        presented.emplace(prefix, std::move(w));
        continue;
      }
      if (!p.scale)
        throw Error(model.path, "tensor '" + prefix + ".compressed': " +
                                    std::string(dtype_name(w.dtype())) +
                                    " codes without a weight_scale beside them");
      expanded.push_back(std::move(w));
      p.weight = &expanded.back();
    }
    const bool coded_weight =
        p.weight && (p.weight->dtype() == DType::I8 || p.weight->dtype() == DType::F8_E4M3);
    if (!p.packed && !(coded_weight && p.scale)) continue;  // a float layer (scales aside)
    if (p.packed && p.weight)
      throw Error(model.path, "layer '" + prefix + "' has both weight and weight_packed");
    presented.emplace(prefix, present(model, prefix, p, h));
  }
  replace_layer_parts(model, part_of, presented);
}

}  // namespace mcw
