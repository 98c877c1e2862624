#include "engine/io/onnx.h"

#include <cstring>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/io/protobuf_wire.h"

namespace mcw {

namespace fs = std::filesystem;

namespace {

// onnx.proto field numbers, the ones MCW reads.
namespace model_f {
constexpr uint32_t ir_version = 1, producer = 2, producer_version = 3, graph = 7, opset = 8;
}
namespace opset_f {
constexpr uint32_t domain = 1, version = 2;
}
namespace graph_f {
constexpr uint32_t node = 1, name = 2, initializer = 5, input = 11, output = 12;
}
namespace node_f {
constexpr uint32_t input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7;
}
namespace attr_f {
constexpr uint32_t name = 1, f = 2, i = 3, s = 4, t = 5, g = 6, floats = 7, ints = 8, strings = 9,
                   type = 20;
}
namespace tensor_f {
constexpr uint32_t dims = 1, data_type = 2, float_data = 4, int32_data = 5, string_data = 6,
                   int64_data = 7, name = 8, raw_data = 9, double_data = 10, uint64_data = 11,
                   external_data = 13, data_location = 14;
}
namespace value_f {
constexpr uint32_t name = 1, type = 2;
}

constexpr int kMaxDepth = 16;  // graphs inside attributes inside graphs: a hostile file's bound

struct Parser {
  const std::string& file;
  std::shared_ptr<const MappedFile> mapped;
  fs::path folder;  // external data must stay inside it

  std::string string_of(const WireReader& r, const WireField& f) const {
    r.expect(f, WireType::Bytes, "a string field");
    return f.as_string();
  }

  Tensor tensor(const WireField& at, const WireReader& outer) const;
  Tensor external(const std::vector<std::pair<std::string, std::string>>& entries, DType dt,
                  const Shape& shape, const std::string& name, size_t offset,
                  const WireReader& r) const;
  OnnxAttribute attribute(const WireField& at, const WireReader& outer, int depth) const;
  OnnxNode node(const WireField& at, const WireReader& outer, int depth) const;
  OnnxValueInfo value_info(const WireField& at, const WireReader& outer) const;
  OnnxGraph graph(const WireField& at, const WireReader& outer, int depth) const;
};

Tensor Parser::tensor(const WireField& at, const WireReader& outer) const {
  outer.expect(at, WireType::Bytes, "a TensorProto");
  WireReader r(at, file);
  std::vector<int64_t> dims;
  int32_t data_type = 0;
  std::string name;
  const WireField* raw = nullptr;
  WireField raw_field;
  std::vector<float> floats;
  std::vector<double> doubles;
  std::vector<int64_t> ints;  // int32_data, int64_data or uint64_data
  bool has_strings = false, external_location = false;
  std::vector<std::pair<std::string, std::string>> external_entries;
  WireField f;
  while (r.next(f)) {
    switch (f.number) {
      case tensor_f::dims:
        r.varints(f, dims);
        break;
      case tensor_f::data_type:
        r.expect(f, WireType::Varint, "data_type");
        data_type = int32_t(f.value);
        break;
      case tensor_f::name:
        name = string_of(r, f);
        break;
      case tensor_f::raw_data:
        r.expect(f, WireType::Bytes, "raw_data");
        raw_field = f, raw = &raw_field;
        break;
      case tensor_f::float_data:
        r.floats(f, floats);
        break;
      case tensor_f::double_data:
        r.doubles(f, doubles);
        break;
      case tensor_f::int32_data:
      case tensor_f::int64_data:
      case tensor_f::uint64_data:
        r.varints(f, ints);
        break;
      case tensor_f::string_data:
        has_strings = true;
        break;
      case tensor_f::data_location:
        external_location = f.value == 1;
        break;
      case tensor_f::external_data: {
        WireReader e(f, file);
        WireField kv;
        std::pair<std::string, std::string> entry;
        while (e.next(kv))
          if (kv.number == 1)
            entry.first = string_of(e, kv);
          else if (kv.number == 2)
            entry.second = string_of(e, kv);
        external_entries.push_back(entry);
        break;
      }
      default:
        break;
    }
  }
  const std::string where = "tensor '" + name + "'";
  if (has_strings) r.fail(at.offset, where + " holds strings, which MCW does not read");
  Shape shape;
  for (int64_t d : dims) {
    if (d < 0) r.fail(at.offset, where + " has a negative dimension");
    shape.push_back(d);
  }
  const DType dt = onnx_dtype(data_type, file + ": " + where);
  const uint64_t bytes = uint64_t(dtype_info(dt).block_bytes) * [&] {
    uint64_t n = 1;
    for (int64_t d : shape) {
      if (d && n > (uint64_t(1) << 56) / uint64_t(d))
        r.fail(at.offset, where + ": its shape overflows");
      n *= uint64_t(d);
    }
    return n;
  }();
  if (external_location) return external(external_entries, dt, shape, name, at.offset, r);
  if (raw) {
    if (raw->bytes.size() != bytes)
      r.fail(raw->bytes_offset, where + " has " + std::to_string(raw->bytes.size()) +
                                    " bytes of raw_data for " + std::to_string(bytes) +
                                    " (shape and type)");
    const size_t align = std::min<size_t>(bytes ? bytes : 1, dtype_info(dt).block_bytes);
    if (reinterpret_cast<uintptr_t>(raw->bytes.data()) % align == 0)  // a view of the file
      return Tensor::view(dt, shape, raw->bytes.data(), bytes, mapped, name);
    Tensor t = Tensor::zeros(dt, shape, name);  // misaligned for its type: copied
    std::memcpy(t.mutable_data(), raw->bytes.data(), bytes);
    return t;
  }
  // Typed fields: float_data (FLOAT, COMPLEX), double_data, int32_data (every type of 32
  // bits or less, FLOAT16/BFLOAT16 as their bit patterns), int64_data, uint64_data. The
  // count is checked before anything is allocated (a hostile shape is not a size).
  const uint64_t n = bytes / std::max(1, dtype_info(dt).block_bytes);
  const size_t have = dt == DType::F32   ? floats.size()
                      : dt == DType::F64 ? doubles.size()
                                         : ints.size();
  if (have != n)
    r.fail(at.offset, where + " has " + std::to_string(have) + " values for " + std::to_string(n) +
                          " (shape)");
  Tensor t = Tensor::zeros(dt, shape, name);
  auto* out = static_cast<uint8_t*>(t.mutable_data());
  if (dt == DType::F32) {
    std::memcpy(out, floats.data(), bytes);
  } else if (dt == DType::F64) {
    std::memcpy(out, doubles.data(), bytes);
  } else {
    const int width = dtype_info(dt).block_bytes;
    for (size_t i = 0; i < ints.size(); ++i) {
      const uint64_t v = uint64_t(ints[i]);
      std::memcpy(out + i * size_t(width), &v, size_t(width));  // little-endian low bytes
    }
  }
  return t;
}

Tensor Parser::external(const std::vector<std::pair<std::string, std::string>>& entries, DType dt,
                        const Shape& shape, const std::string& name, size_t offset,
                        const WireReader& r) const {
  std::string location;
  uint64_t start = 0, length = 0;
  bool has_length = false;
  for (const auto& [k, v] : entries) {
    try {
      if (k == "location")
        location = v;
      else if (k == "offset")
        start = std::stoull(v);
      else if (k == "length")
        length = std::stoull(v), has_length = true;
    } catch (const std::exception&) {
      r.fail(offset, "tensor '" + name + "': external data " + k + " '" + v + "' is not a number");
    }
  }
  const std::string where = "tensor '" + name + "': external data '" + location + "'";
  // Only files inside the model's folder: no absolute paths, no way up, no link out.
  const fs::path rel(location);
  if (location.empty() || rel.is_absolute() || rel.has_root_name())
    throw Error(file, where + " must be a path relative to the model's folder");
  for (const fs::path& part : rel)
    if (part == "..") throw Error(file, where + " leaves the model's folder");
  std::error_code ec;
  const fs::path target = fs::weakly_canonical(folder / rel, ec);
  const fs::path root = fs::weakly_canonical(folder, ec);
  const auto [r_end, t_it] = std::mismatch(root.begin(), root.end(), target.begin(), target.end());
  if (ec || r_end != root.end()) throw Error(file, where + " leaves the model's folder");
  auto data = MappedFile::open(target.string());
  uint64_t bytes = uint64_t(dtype_info(dt).block_bytes);
  for (int64_t d : shape) bytes *= uint64_t(d);  // bounded by the caller's overflow check
  if (has_length && length != bytes)
    throw Error(file,
                where + " says " + std::to_string(length) + " bytes for " + std::to_string(bytes));
  if (start > data->size() || bytes > data->size() - start)
    throw Error(file, where + " ends past the end of " + target.string());
  const std::byte* p = data->data() + start;
  if (reinterpret_cast<uintptr_t>(p) % std::max(1, dtype_info(dt).block_bytes) == 0)
    return Tensor::view(dt, shape, p, bytes, data, name);
  Tensor copy = Tensor::zeros(dt, shape, name);
  std::memcpy(copy.mutable_data(), p, bytes);
  return copy;
}

OnnxAttribute Parser::attribute(const WireField& at, const WireReader& outer, int depth) const {
  outer.expect(at, WireType::Bytes, "an AttributeProto");
  WireReader r(at, file);
  OnnxAttribute a;
  WireField f;
  bool typed = false;
  while (r.next(f)) {
    switch (f.number) {
      case attr_f::name:
        a.name = string_of(r, f);
        break;
      case attr_f::type:
        a.type = OnnxAttribute::Type(f.value), typed = true;
        break;
      case attr_f::f:
        r.expect(f, WireType::Fixed32, "attribute f");
        a.f = f.as_float();
        break;
      case attr_f::i:
        r.expect(f, WireType::Varint, "attribute i");
        a.i = f.as_int64();
        break;
      case attr_f::s:
        a.s = string_of(r, f);
        break;
      case attr_f::t:
        a.t = tensor(f, r);
        break;
      case attr_f::g:
        if (depth >= kMaxDepth)
          r.fail(f.offset, "graphs nested more than " + std::to_string(kMaxDepth) + " deep");
        graph(f, r, depth + 1);  // checked, not kept: MCW runs no control flow
        break;
      case attr_f::floats:
        r.floats(f, a.floats);
        break;
      case attr_f::ints:
        r.varints(f, a.ints);
        break;
      case attr_f::strings:
        a.strings.push_back(string_of(r, f));
        break;
      default:
        break;
    }
  }
  if (!typed) r.fail(at.offset, "attribute '" + a.name + "' has no type (IR 3 requires one)");
  return a;
}

OnnxNode Parser::node(const WireField& at, const WireReader& outer, int depth) const {
  outer.expect(at, WireType::Bytes, "a NodeProto");
  WireReader r(at, file);
  OnnxNode n;
  WireField f;
  while (r.next(f)) {
    switch (f.number) {
      case node_f::input:
        n.inputs.push_back(string_of(r, f));
        break;
      case node_f::output:
        n.outputs.push_back(string_of(r, f));
        break;
      case node_f::name:
        n.name = string_of(r, f);
        break;
      case node_f::op_type:
        n.op_type = string_of(r, f);
        break;
      case node_f::domain:
        n.domain = string_of(r, f);
        break;
      case node_f::attribute:
        n.attributes.push_back(attribute(f, r, depth));
        break;
      default:
        break;
    }
  }
  if (n.op_type.empty()) r.fail(at.offset, "a node without op_type");
  return n;
}

OnnxValueInfo Parser::value_info(const WireField& at, const WireReader& outer) const {
  outer.expect(at, WireType::Bytes, "a ValueInfoProto");
  WireReader r(at, file);
  OnnxValueInfo v;
  WireField f;
  while (r.next(f)) {
    if (f.number == value_f::name) v.name = string_of(r, f);
    if (f.number != value_f::type) continue;
    WireReader type(f, file);  // TypeProto: tensor_type = 1
    WireField tf;
    while (type.next(tf)) {
      if (tf.number != 1) continue;
      WireReader tensor_type(tf, file);  // elem_type = 1, shape = 2
      WireField ef;
      while (tensor_type.next(ef)) {
        if (ef.number == 1) v.elem_type = int32_t(ef.value);
        if (ef.number != 2) continue;
        WireReader shape(ef, file);  // dim = 1: dim_value = 1, dim_param = 2
        WireField df;
        while (shape.next(df)) {
          if (df.number != 1) continue;
          WireReader dim(df, file);
          WireField d;
          int64_t value = -1;
          std::string param;
          while (dim.next(d))
            if (d.number == 1)
              value = d.as_int64();
            else if (d.number == 2)
              param = string_of(dim, d);
          v.dims.push_back(value), v.dim_params.push_back(param);
        }
      }
    }
  }
  return v;
}

OnnxGraph Parser::graph(const WireField& at, const WireReader& outer, int depth) const {
  outer.expect(at, WireType::Bytes, "a GraphProto");
  WireReader r(at, file);
  OnnxGraph g;
  WireField f;
  while (r.next(f)) {
    switch (f.number) {
      case graph_f::node:
        g.nodes.push_back(node(f, r, depth));
        break;
      case graph_f::name:
        g.name = string_of(r, f);
        break;
      case graph_f::initializer:
        g.initializers.push_back(tensor(f, r));
        break;
      case graph_f::input:
        g.inputs.push_back(value_info(f, r));
        break;
      case graph_f::output:
        g.outputs.push_back(value_info(f, r));
        break;
      default:
        break;
    }
  }
  return g;
}

}  // namespace

const OnnxAttribute* OnnxNode::attribute(const std::string& n) const {
  for (const OnnxAttribute& a : attributes)
    if (a.name == n) return &a;
  return nullptr;
}

int64_t OnnxModel::opset() const {
  const auto it = opsets.find("");
  return it == opsets.end() ? 0 : it->second;
}

std::vector<Tensor> OnnxModel::weights() const {
  std::vector<Tensor> out = graph.initializers;
  for (const OnnxNode& n : graph.nodes)
    if (n.op_type == "Constant" && n.domain.empty() && !n.outputs.empty())
      if (const OnnxAttribute* v = n.attribute("value"); v && v->type == OnnxAttribute::Tensor) {
        Tensor t = v->t;
        t.set_name(n.outputs.front());
        out.push_back(std::move(t));
      }
  return out;
}

DType onnx_dtype(int32_t data_type, const std::string& where) {
  switch (data_type) {
    case 1:
      return DType::F32;
    case 2:
      return DType::U8;
    case 3:
      return DType::I8;
    case 4:
      return DType::U16;
    case 5:
      return DType::I16;
    case 6:
      return DType::I32;
    case 7:
      return DType::I64;
    case 9:
      return DType::BOOL;
    case 10:
      return DType::F16;
    case 11:
      return DType::F64;
    case 12:
      return DType::U32;
    case 13:
      return DType::U64;
    case 16:
      return DType::BF16;
    default:
      break;
  }
  throw Error(where,
              "ONNX data type " + std::to_string(data_type) +
                  " is not supported (float, float16, bfloat16, double, integers and bool are)");
}

Tensor read_onnx_tensor(const std::string& path) {
  const auto file = MappedFile::open(path);
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(file->data()),
                                       file->size());
  Parser p{path, file, fs::path(path).parent_path()};
  WireField whole;
  whole.type = WireType::Bytes, whole.bytes = bytes;
  return p.tensor(whole, WireReader(bytes, 0, path));  // a view keeps the mapping alive
}

OnnxModel read_onnx(const std::string& path) {
  OnnxModel m;
  m.path = path;
  m.file = MappedFile::open(path);
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(m.file->data()),
                                       m.file->size());
  Parser p{path, m.file, fs::path(path).parent_path()};
  if (p.folder.empty()) p.folder = ".";
  WireReader r(bytes, 0, path);
  WireField f;
  bool has_graph = false;
  std::string version;
  while (r.next(f)) {
    switch (f.number) {
      case model_f::ir_version:
        r.expect(f, WireType::Varint, "ir_version");
        m.ir_version = f.as_int64();
        break;
      case model_f::producer:
        m.producer = p.string_of(r, f);
        break;
      case model_f::producer_version:
        version = p.string_of(r, f);
        break;
      case model_f::graph:
        m.graph = p.graph(f, r, 0), has_graph = true;
        break;
      case model_f::opset: {
        WireReader o(f, path);
        WireField of;
        std::string domain;
        int64_t v = 0;
        while (o.next(of))
          if (of.number == opset_f::domain)
            domain = p.string_of(o, of);
          else if (of.number == opset_f::version)
            v = of.as_int64();
        if (domain == "ai.onnx") domain.clear();
        m.opsets[domain] = v;
        break;
      }
      default:
        break;
    }
  }
  if (!version.empty()) m.producer += " " + version;
  if (!has_graph) throw Error(path, "not an ONNX model: no graph (field 7)");
  if (m.ir_version < 3)
    throw Error(path, "ONNX IR version " + std::to_string(m.ir_version) + " (3 or later is read)");
  const int64_t opset = m.opset();
  if (opset < kOnnxMinOpset || opset > kOnnxMaxOpset)
    throw Error(path, "ONNX opset " + std::to_string(opset) + " of the default domain; MCW reads " +
                          std::to_string(kOnnxMinOpset) + " to " + std::to_string(kOnnxMaxOpset));
  return m;
}

}  // namespace mcw
