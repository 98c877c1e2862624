#include "engine/onnx/onnx_write_compressed.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/io/protobuf_wire.h"
#include "engine/io/protobuf_write.h"
#include "engine/onnx/onnx_packed.h"

namespace mcw {

namespace {

// TensorProto.DataType
enum : int32_t { kFloat = 1, kUint8 = 2, kInt8 = 3, kInt64 = 7, kFloat16 = 10 };

template <class T>
std::string_view raw_of(const std::vector<T>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)};
}

// The nodes and initializers added to the graph, as encoded NodeProto / TensorProto fields.
class GraphAdditions {
 public:
  std::string nodes, initializers;

  void tensor(const std::string& name, const Shape& dims, int32_t type, std::string_view raw) {
    std::string t;
    for (int64_t d : dims) pb::int_field(t, 1, d);
    pb::int_field(t, 2, type);
    pb::bytes_field(t, 8, name);
    pb::bytes_field(t, 9, raw);
    pb::bytes_field(initializers, 5, t);
  }
  std::string shape_const(const std::string& name, const Shape& dims) {
    tensor(name, {int64_t(dims.size())}, kInt64, raw_of(dims));
    return name;
  }
  std::string float_const(const std::string& name, float v) {
    tensor(name, {}, kFloat, std::string_view(reinterpret_cast<const char*>(&v), 4));
    return name;
  }

  struct Attr {
    std::string name;
    int64_t i = 0;
    std::vector<int64_t> ints;
    bool is_ints = false;
  };
  // An encoded NodeProto (without its field key), for `nodes` or a spliced position.
  static std::string node_proto(const std::string& op, const std::vector<std::string>& in,
                                const std::vector<std::string>& out, const std::string& name,
                                const std::vector<Attr>& attrs = {}) {
    std::string n;
    for (const std::string& s : in) pb::bytes_field(n, 1, s);
    for (const std::string& s : out) pb::bytes_field(n, 2, s);
    pb::bytes_field(n, 3, name);
    pb::bytes_field(n, 4, op);
    for (const Attr& a : attrs) {
      std::string e;
      pb::bytes_field(e, 1, a.name);
      if (a.is_ints)
        for (int64_t v : a.ints) pb::int_field(e, 8, v);
      else
        pb::int_field(e, 3, a.i);
      pb::int_field(e, 20, a.is_ints ? 7 : 2);  // AttributeType INTS / INT
      pb::bytes_field(n, 5, e);
    }
    return n;
  }
  // Adds a node whose single output is `out`; returns it.
  std::string node(const std::string& op, const std::vector<std::string>& in,
                   const std::string& out, const std::vector<Attr>& attrs = {}) {
    pb::bytes_field(nodes, 1, node_proto(op, in, {out}, out, attrs));
    return out;
  }
};

bool plain_affine(const OnnxCompressedLayer& l) {
  const CompressedTensor& f = l.parts.front();
  for (const CompressedTensor& t : l.parts)
    if (t.coding != WeightCoding::Affine || !t.mask.empty() || !t.outlier_index.empty() ||
        !t.g_idx.empty() || !t.input_scale.empty() || t.bits != f.bits ||
        t.group_size != f.group_size || t.symmetric != f.symmetric)
      return false;
  return true;
}

bool plain_low_rank(const OnnxCompressedLayer& l) {
  const CompressedTensor& t = l.parts.front();
  return l.parts.size() == 1 && t.coding == WeightCoding::LowRank && t.mask.empty() &&
         t.outlier_index.empty() && t.input_scale.empty();
}

// `matrix` [rows·groups, cols] as the layer's weight named l.name.
void to_weight(GraphAdditions& g, const OnnxLayer& l, const std::string& matrix) {
  const std::string p = l.name + ".mcw.";
  if (!l.transposed) {
    g.node("Reshape", {matrix, g.shape_const(p + "shape", l.weight_shape)}, l.name);
    return;
  }
  const std::string m2 =
      g.node("Reshape", {matrix, g.shape_const(p + "mshape", {l.rows, l.cols})}, p + "matrix2d");
  const std::string t = g.node("Transpose", {m2}, p + "transposed", {{"perm", 0, {1, 0}, true}});
  g.node("Reshape", {t, g.shape_const(p + "shape", l.weight_shape)}, l.name);
}

void write_affine(GraphAdditions& g, const OnnxCompressedLayer& l) {
  const CompressedTensor& f = l.parts.front();
  const int bits = f.bits;
  const int64_t cols = l.layer.cols, gs = f.group_size, groups = cols / gs;
  const int64_t rows = l.layer.rows * l.layer.groups;  // every part's rows, in order
  std::vector<uint8_t> codes(size_t(rows * cols));
  std::vector<uint16_t> scales;
  std::vector<uint8_t> zeros;
  for (size_t k = 0; k < l.parts.size(); ++k) {
    const CompressedTensor& t = l.parts[k];
    unpack_codes(t.codes.data(), size_t(t.rows * cols), bits, codes.data() + k * t.rows * cols);
    for (size_t i = 0; i < t.scales.size(); ++i) {
      scales.push_back(f32_to_f16(t.scales[i]));
      if (!t.symmetric) zeros.push_back(uint8_t(t.zeros[i]));
    }
  }
  const std::string p = l.layer.name + ".mcw.";
  // Codes per stored word: a byte holds two 4-bit or four 2-bit codes; 3-bit codes go eight
  // to a 24-bit word of three bytes (exact in f32, whose mantissa has 24 bits). A group whose
  // size the word does not divide keeps a byte per code.
  const int per = bits == 3 ? 8 : bits < 8 ? 8 / bits : 1;
  const bool packed = per > 1 && gs % per == 0;
  const int word_bytes = bits == 3 && packed ? 3 : 1;
  const int64_t words = packed ? gs / per : gs;
  std::vector<uint8_t> stored(size_t(rows * groups * words * word_bytes), 0);
  for (size_t i = 0; i < codes.size(); ++i) {
    if (!packed) {
      stored[i] = codes[i];
      continue;
    }
    const uint32_t bits_at = uint32_t(codes[i]) << (bits * int(i % size_t(per)));
    for (int k = 0; k < word_bytes; ++k)
      stored[(i / size_t(per)) * size_t(word_bytes) + size_t(k)] |= uint8_t(bits_at >> (8 * k));
  }
  std::string q;
  if (word_bytes == 3) {  // word = byte0 + 256·byte1 + 65536·byte2
    g.tensor(p + "codes", {rows, groups, words, 3}, kUint8, raw_of(stored));
    const std::string bytes_f =
        g.node("Cast", {p + "codes"}, p + "codes_f", {{"to", kFloat, {}, false}});
    const std::vector<float> place = {1.0f, 256.0f, 65536.0f};
    g.tensor(p + "place", {3, 1}, kFloat, raw_of(place));
    q = g.node("Reshape",
               {g.node("MatMul", {bytes_f, p + "place"}, p + "words4"),
                g.shape_const(p + "wshape", {rows, groups, words})},
               p + "words");
  } else {
    g.tensor(p + "codes", {rows, groups, words}, kUint8, raw_of(stored));
    q = g.node("Cast", {p + "codes"}, p + "codes_f", {{"to", kFloat, {}, false}});
  }
  if (packed) {  // word = Σ_j code_j · 2^(bits·j): peel the codes off with Div and Floor
    const float base = float(1 << bits);
    const std::string shape4 = g.shape_const(p + "shape4", {rows, groups, words, 1});
    std::vector<std::string> parts;
    std::string rest = q;
    const std::string b = g.float_const(p + "base", base);
    for (int j = 0; j < per; ++j) {
      const std::string s = std::to_string(j);
      std::string code = rest;
      if (j + 1 < per) {
        const std::string high =
            g.node("Floor", {g.node("Div", {rest, b}, p + "div" + s)}, p + "high" + s);
        code = g.node("Sub", {rest, g.node("Mul", {high, b}, p + "mul" + s)}, p + "code" + s);
        rest = high;
      }
      parts.push_back(g.node("Reshape", {code, shape4}, p + "part" + s));
    }
    const std::string cat = g.node("Concat", parts, p + "concat", {{"axis", 3, {}, false}});
    q = g.node("Reshape", {cat, g.shape_const(p + "shape3", {rows, groups, gs})}, p + "unpacked");
  }
  std::string zero;
  if (f.symmetric) {
    zero = g.float_const(p + "zero", float(1 << (bits - 1)));
  } else {
    g.tensor(p + "zero_u8", {rows, groups, 1}, kUint8, raw_of(zeros));
    zero = g.node("Cast", {p + "zero_u8"}, p + "zero", {{"to", kFloat, {}, false}});
  }
  g.tensor(p + "scale_f16", {rows, groups, 1}, kFloat16, raw_of(scales));
  const std::string scale =
      g.node("Cast", {p + "scale_f16"}, p + "scale", {{"to", kFloat, {}, false}});
  const std::string w =
      g.node("Mul", {g.node("Sub", {q, zero}, p + "centred"), scale}, p + "matrix");
  to_weight(g, l.layer, w);
}

void write_low_rank(GraphAdditions& g, const OnnxCompressedLayer& l) {
  const CompressedTensor& t = l.parts.front();
  const std::string p = l.layer.name + ".mcw.";
  // In f32, as MCW multiplied them (its accounting counts f16 factors, which would move the
  // output by about 1e-3 relative).
  for (const auto& [name, m] : {std::pair{"a", &t.lr_a}, {"b", &t.lr_b}}) {
    const std::vector<float> v(m->as<float>(), m->as<float>() + m->numel());
    g.tensor(p + name, m->shape(), kFloat, raw_of(v));
  }
  to_weight(g, l.layer, g.node("MatMul", {p + "a", p + "b"}, p + "matrix"));
}

// A layer whose mask removes whole input channels (channel_obs) on a node that reads them
// from one axis of its input: a Conv with one group, MatMul, Gemm (onnx_packed.h's rule).
// Its weight keeps the other channels only, f32 as MCW evaluated them, and the node reads
// its input through a Gather of those channels along `axis`. Empty channels: not sliced.
struct SlicedInput {
  std::vector<int64_t> channels;
  int64_t axis = 1;
};

SlicedInput write_sliced(GraphAdditions& g, const OnnxModel& model, const OnnxCompressedLayer& l,
                         const OnnxValue& decoded) {
  const OnnxLayer& layer = l.layer;
  const OnnxNode& node = model.graph.nodes[layer.node];
  if (!runs_packed(l)) return {};
  const std::vector<int32_t> kept = kept_input_channels(l.parts.front(), channel_columns(layer));
  if (kept.empty()) return {};
  SlicedInput s;
  s.channels.assign(kept.begin(), kept.end());
  if (layer.op == "Conv") {
    s.axis = 1;
  } else if (layer.op == "MatMul") {
    s.axis = -1;
  } else {
    const OnnxAttribute* ta = node.attribute("transA");
    s.axis = ta && ta->i ? 0 : 1;
  }
  // The weight's channel axis: 0 when it holds the matrix transposed ([cols, rows]), else 1
  // (a Conv's [O, C, kh, kw], a Gemm's Bᵀ [N, K]); every element below it is `inner` long.
  const Shape& shape = decoded.shape;
  const size_t axis = layer.transposed ? 0 : 1;
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= shape[d];
  for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  std::vector<float> w;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c : s.channels) {
      const float* from = decoded.f.data() + (o * shape[axis] + c) * inner;
      w.insert(w.end(), from, from + inner);
    }
  Shape sliced = shape;
  sliced[axis] = int64_t(s.channels.size());
  g.tensor(layer.name, sliced, kFloat, raw_of(w));
  g.tensor(layer.name + ".mcw.kept", {int64_t(s.channels.size())}, kInt64, raw_of(s.channels));
  return s;
}

// The fields of one message with their raw bytes [offset, end) in the file.
struct RawField {
  WireField f;
  size_t end = 0;
};
std::vector<RawField> fields_of(WireReader r) {
  std::vector<RawField> out;
  WireField f;
  while (r.next(f)) out.push_back({f, r.position()});
  return out;
}

std::string string_field(const WireField& msg, uint32_t number, const std::string& path) {
  WireReader r(msg, path);
  WireField f;
  while (r.next(f))
    if (f.number == number && f.type == WireType::Bytes) return f.as_string();
  return {};
}

}  // namespace

OnnxWriteReport write_compressed_onnx(const OnnxModel& model, const OnnxCompression& c,
                                      const std::string& path) {
  OnnxWriteReport report;
  GraphAdditions add;
  std::set<std::string> replaced;
  std::vector<std::string> decoded, sliced_names;
  std::map<size_t, std::pair<std::string, SlicedInput>> sliced;  // by node: layer, Gather
  for (const OnnxCompressedLayer& l : c.layers) {
    replaced.insert(l.layer.name);
    if (plain_affine(l)) {
      write_affine(add, l);
    } else if (plain_low_rank(l)) {
      write_low_rank(add, l);
    } else if (SlicedInput s = write_sliced(add, model, l, c.weights.at(l.layer.name));
               !s.channels.empty()) {
      sliced[l.layer.node] = {l.layer.name, std::move(s)};
      sliced_names.push_back(l.layer.name);
    } else {
      const OnnxValue& w = c.weights.at(l.layer.name);
      add.tensor(l.layer.name, w.shape, kFloat, raw_of(w.f));
      decoded.push_back(l.layer.name);
    }
  }
  auto some = [](const std::vector<std::string>& names) {
    std::string s;
    for (size_t k = 0; k < std::min<size_t>(names.size(), 4); ++k) s += (k ? ", " : "") + names[k];
    if (names.size() > 4) s += " and " + std::to_string(names.size() - 4) + " more";
    return s;
  };
  if (!sliced_names.empty())
    report.notes.push_back(std::to_string(sliced_names.size()) +
                           " layers keep only their kept input channels (f32) and read them "
                           "through a Gather: " +
                           some(sliced_names));
  if (!decoded.empty())
    report.notes.push_back(std::to_string(decoded.size()) +
                           " layers are stored as their decoded f32 weights (a coding without a "
                           "standard-operator form here): " +
                           some(decoded));
  // Activation grids: QuantizeLinear + DequantizeLinear in front of their layers.
  std::map<size_t, const OnnxActivationQuant*> acts;
  if (!c.activations.empty()) {
    if (model.opset() < 10 || c.activations.front().bits != 8)
      report.notes.push_back(
          "the activation grids are not in the file (QuantizeLinear needs opset 10 and 8-bit "
          "codes; this graph has opset " +
          std::to_string(model.opset()) + "): they are in the run's report");
    else
      for (const OnnxActivationQuant& q : c.activations) acts[q.node] = &q;
  }

  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(model.file->data()),
                                       model.file->size());
  auto raw = [&](const RawField& r) {
    return std::string_view(reinterpret_cast<const char*>(bytes.data()) + r.f.offset,
                            r.end - r.f.offset);
  };
  std::string out;
  for (const RawField& top : fields_of(WireReader(bytes, 0, model.path))) {
    if (top.f.number != 7 || top.f.type != WireType::Bytes) {
      out.append(raw(top));
      continue;
    }
    std::string graph = add.nodes;  // the decoders first: they read only initializers
    size_t node = 0;
    for (const RawField& gf : fields_of(WireReader(top.f, model.path))) {
      const uint32_t n = gf.f.number;
      if (n == 5 && replaced.count(string_field(gf.f, 8, model.path))) continue;
      if (n == 11 && replaced.count(string_field(gf.f, 1, model.path))) continue;
      if (n != 1) {
        graph.append(raw(gf));
        continue;
      }
      const size_t k = node++;
      const OnnxNode& nd = model.graph.nodes[k];
      if (nd.op_type == "Constant" && nd.outputs.size() == 1 && replaced.count(nd.outputs[0]))
        continue;
      const auto a = acts.find(k);
      const auto sl = sliced.find(k);
      if (a == acts.end() && sl == sliced.end()) {
        graph.append(raw(gf));
        continue;
      }
      std::vector<std::string> inputs = nd.inputs;
      if (a != acts.end()) {  // x -> QuantizeLinear -> DequantizeLinear -> the layer
        const OnnxActivationQuant& q = *a->second;
        const std::string p = q.layer + ".mcw.act.";
        add.float_const(p + "scale", q.scale);
        const char zero = q.symmetric ? char(int8_t(q.zero)) : char(uint8_t(q.zero));
        add.tensor(p + "zero", {}, q.symmetric ? kInt8 : kUint8, std::string_view(&zero, 1));
        pb::bytes_field(
            graph, 1,
            GraphAdditions::node_proto("QuantizeLinear", {inputs[0], p + "scale", p + "zero"},
                                       {p + "q"}, p + "q"));
        pb::bytes_field(
            graph, 1,
            GraphAdditions::node_proto("DequantizeLinear", {p + "q", p + "scale", p + "zero"},
                                       {p + "x"}, p + "x"));
        inputs[0] = p + "x";
      }
      if (sl != sliced.end()) {  // ... -> Gather of the kept channels -> the layer
        const std::string p = sl->second.first + ".mcw.";
        pb::bytes_field(
            graph, 1,
            GraphAdditions::node_proto("Gather", {inputs[0], p + "kept"}, {p + "input"},
                                       p + "input", {{"axis", sl->second.second.axis, {}, false}}));
        inputs[0] = p + "input";
      }
      std::string copy;  // the node's own fields, its inputs replaced
      for (const std::string& s : inputs) pb::bytes_field(copy, 1, s);
      for (const RawField& nf : fields_of(WireReader(gf.f, model.path)))
        if (nf.f.number != 1) copy.append(raw(nf));
      pb::bytes_field(graph, 1, copy);
    }
    graph += add.initializers;
    pb::bytes_field(out, 7, graph);
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(out.data(), std::streamsize(out.size()));
    if (!f) throw Error(path, "cannot write the compressed model");
  }
  std::filesystem::rename(tmp, path);
  report.bytes = out.size();
  return report;
}

}  // namespace mcw
