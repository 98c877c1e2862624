// GGUF reader. Every count and length is checked against the bytes left in the file
// before anything is reserved, so a hostile header cannot make it allocate more than a
// small multiple of the file's size, loop for long, or read past the mapping.
#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_set>

#include "engine/core/error.h"
#include "engine/io/gguf.h"

namespace mcw {

static_assert(std::endian::native == std::endian::little, "GGUF reading assumes little-endian");

namespace {

constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;     // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, 0 dims, type, offset
constexpr uint32_t kMaxDims = 4;

std::string in_quotes(std::string_view s) {
  std::string r;  // built by appending: GCC 12 warns falsely on "'" + std::string
  r.reserve(s.size() + 2);
  r += '\'';
  r += s;
  r += '\'';
  return r;
}

// Smallest encoding of one element of type t (arrays: element type + count).
uint64_t min_encoded_bytes(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::BOOL: return 1;
    case GGUFType::UINT16: case GGUFType::INT16: return 2;
    case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::FLOAT32: return 4;
    case GGUFType::UINT64: case GGUFType::INT64: case GGUFType::FLOAT64: return 8;
    case GGUFType::STRING: return 8;
    case GGUFType::ARRAY: return 4 + 8;
  }
  return 1;
}

class Cursor {
 public:
  Cursor(const std::string& path, const std::byte* data, uint64_t size)
      : path_(path), data_(data), size_(size) {}

  const std::string& path() const { return path_; }
  uint64_t pos() const { return pos_; }
  uint64_t size() const { return size_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::byte* at(uint64_t offset) const { return data_ + offset; }
  void skip(uint64_t n) { pos_ += n; }  // after need(n)

  [[noreturn]] void fail(const std::string& message, uint64_t offset) const {
    throw Error(path_, message, int64_t(offset));
  }

  void need(uint64_t n, std::string_view what) const {
    if (n > remaining())
      fail("file is truncated: it ends inside " + std::string(what) + " (" + std::to_string(n) +
               " bytes needed, " + std::to_string(remaining()) + " left)",
           pos_);
  }

  template <class T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T x;
    std::memcpy(&x, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return x;
  }

  std::string read_string(std::string_view what) {
    const uint64_t start = pos_;
    const uint64_t len = read<uint64_t>(what);
    if (len > remaining())
      fail(std::string(what) + " has length " + std::to_string(len) +
               ", longer than the rest of the file (" + std::to_string(remaining()) +
               " bytes): the file is truncated or corrupt",
           start);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), size_t(len));
    pos_ += len;
    return s;
  }

  // `count` elements of at least `min_bytes` each must fit in what is left of the file.
  void check_count(uint64_t count, uint64_t min_bytes, std::string_view what,
                   uint64_t offset) const {
    const uint64_t most = remaining() / min_bytes;
    if (count > most)
      fail(std::string(what) + " is " + std::to_string(count) + ", but the rest of the file (" +
               std::to_string(remaining()) + " bytes) can hold at most " + std::to_string(most) +
               ": the file is truncated or corrupt",
           offset);
  }

 private:
  const std::string& path_;
  const std::byte* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

// Reserves for `count` elements (already checked against the file), but never more bytes
// than the file has left: the in-memory element (a std::string, say) can be larger than its
// encoding, and vectors grow as elements are actually read.
template <class V>
void reserve_within(V& v, uint64_t count, uint64_t bytes_left) {
  v.reserve(size_t(std::min<uint64_t>(count, bytes_left / sizeof(typename V::value_type) + 1)));
}

GGUFType read_value_type(Cursor& c, const std::string& key, std::string_view what) {
  const uint64_t at = c.pos();
  const uint32_t t = c.read<uint32_t>(what);
  if (t >= kGGUFTypeCount)
    c.fail("key " + in_quotes(key) + " has unknown " + std::string(what) + " " + std::to_string(t),
           at);
  return GGUFType(t);
}

bool read_bool(Cursor& c, const std::string& key) {
  const uint64_t at = c.pos();
  const uint8_t b = c.read<uint8_t>("a BOOL value");
  if (b > 1)
    c.fail("key " + in_quotes(key) + " has BOOL value " + std::to_string(b) + " (must be 0 or 1)",
           at);
  return b != 0;
}

template <class T>
std::vector<T> read_numbers(Cursor& c, uint64_t count) {
  const uint64_t bytes = count * sizeof(T);  // no overflow: check_count bounded count
  c.need(bytes, "an array");
  std::vector<T> v(static_cast<size_t>(count));
  if (count) std::memcpy(v.data(), c.at(c.pos()), size_t(bytes));
  c.skip(bytes);
  return v;
}

GGUFArray read_array(Cursor& c, const std::string& key, int depth) {
  const uint64_t at = c.pos();
  if (depth > kMaxArrayDepth)
    c.fail("key " + in_quotes(key) + " nests arrays more than " + std::to_string(kMaxArrayDepth) +
               " deep",
           at);
  const GGUFType elem = read_value_type(c, key, "array element type");
  const uint64_t count_at = c.pos();
  const uint64_t count = c.read<uint64_t>("an array length");
  c.check_count(count, min_encoded_bytes(elem), "key " + in_quotes(key) + ": array length",
                count_at);
  GGUFArray a;
  switch (elem) {
    case GGUFType::UINT8: a.items = read_numbers<uint8_t>(c, count); break;
    case GGUFType::INT8: a.items = read_numbers<int8_t>(c, count); break;
    case GGUFType::UINT16: a.items = read_numbers<uint16_t>(c, count); break;
    case GGUFType::INT16: a.items = read_numbers<int16_t>(c, count); break;
    case GGUFType::UINT32: a.items = read_numbers<uint32_t>(c, count); break;
    case GGUFType::INT32: a.items = read_numbers<int32_t>(c, count); break;
    case GGUFType::FLOAT32: a.items = read_numbers<float>(c, count); break;
    case GGUFType::UINT64: a.items = read_numbers<uint64_t>(c, count); break;
    case GGUFType::INT64: a.items = read_numbers<int64_t>(c, count); break;
    case GGUFType::FLOAT64: a.items = read_numbers<double>(c, count); break;
    case GGUFType::BOOL: {
      std::vector<bool> v(static_cast<size_t>(count));
      for (uint64_t i = 0; i < count; ++i) v[i] = read_bool(c, key);
      a.items = std::move(v);
      break;
    }
    case GGUFType::STRING: {
      std::vector<std::string> v;
      reserve_within(v, count, c.remaining());
      for (uint64_t i = 0; i < count; ++i) v.push_back(c.read_string("a string in an array"));
      a.items = std::move(v);
      break;
    }
    case GGUFType::ARRAY: {
      std::vector<GGUFArray> v;
      reserve_within(v, count, c.remaining());
      for (uint64_t i = 0; i < count; ++i) v.push_back(read_array(c, key, depth + 1));
      a.items = std::move(v);
      break;
    }
  }
  return a;
}

GGUFValue read_value(Cursor& c, GGUFType type, const std::string& key) {
  switch (type) {
    case GGUFType::UINT8: return c.read<uint8_t>("a UINT8 value");
    case GGUFType::INT8: return c.read<int8_t>("an INT8 value");
    case GGUFType::UINT16: return c.read<uint16_t>("a UINT16 value");
    case GGUFType::INT16: return c.read<int16_t>("an INT16 value");
    case GGUFType::UINT32: return c.read<uint32_t>("a UINT32 value");
    case GGUFType::INT32: return c.read<int32_t>("an INT32 value");
    case GGUFType::FLOAT32: return c.read<float>("a FLOAT32 value");
    case GGUFType::UINT64: return c.read<uint64_t>("a UINT64 value");
    case GGUFType::INT64: return c.read<int64_t>("an INT64 value");
    case GGUFType::FLOAT64: return c.read<double>("a FLOAT64 value");
    case GGUFType::BOOL: return read_bool(c, key);
    case GGUFType::STRING: return c.read_string("a string value");
    case GGUFType::ARRAY: return read_array(c, key, 1);
  }
  return {};
}

void read_header(Cursor& c, GGUFFile& f) {
  if (c.size() == 0) c.fail("file is empty (expected a GGUF file)", 0);
  c.need(4, "the magic number");
  const auto* m = reinterpret_cast<const unsigned char*>(c.at(0));
  if (std::memcmp(m, "GGUF", 4) != 0) {
    static const char* kHex = "0123456789abcdef";
    std::string hex;
    for (int i = 0; i < 4; ++i) {
      if (i) hex += ' ';
      hex += kHex[m[i] >> 4];
      hex += kHex[m[i] & 15];
    }
    c.fail("not a GGUF file: bad magic " + hex + " (expected 47 47 55 46, \"GGUF\")", 0);
  }
  c.read<uint32_t>("the magic number");
  const uint64_t version_at = c.pos();
  const uint32_t version = c.read<uint32_t>("the version");
  if (version == 0x02000000u || version == 0x03000000u)
    c.fail("big-endian GGUF files are not supported", version_at);
  if (version == 1)
    c.fail("GGUF version 1 is not supported (it predates 64-bit counts); re-convert the model "
           "with a current llama.cpp",
           version_at);
  if (version != 2 && version != 3)
    c.fail("unsupported GGUF version " + std::to_string(version) + " (MCW reads versions 2 and 3)",
           version_at);
  f.version = version;
}

struct TensorInfo {
  std::string name;
  DType dtype;
  uint32_t ggml_type;
  bool readable;  // a type MCW decodes (else listed, its reads refused)
  Shape shape;
  uint64_t offset, bytes, offset_at;
};

TensorInfo read_tensor_info(Cursor& c) {
  TensorInfo t;
  const uint64_t start = c.pos();
  t.name = c.read_string("a tensor name");
  if (!is_valid_utf8(t.name)) c.fail("tensor name is not valid UTF-8", start);
  const std::string who = "tensor " + in_quotes(t.name);
  const uint64_t dims_at = c.pos();
  const uint32_t n_dims = c.read<uint32_t>("a tensor's dimension count");
  if (n_dims > kMaxDims)
    c.fail(who + " has " + std::to_string(n_dims) + " dimensions; GGUF allows at most " +
               std::to_string(kMaxDims),
           dims_at);
  uint64_t ne[kMaxDims] = {};
  for (uint32_t i = 0; i < n_dims; ++i) {
    const uint64_t at = c.pos();
    ne[i] = c.read<uint64_t>("a tensor's dimensions");
    if (ne[i] > uint64_t(INT64_MAX))
      c.fail(who + " has dimension " + std::to_string(ne[i]) + ", past the signed 64-bit range",
             at);
  }
  for (uint32_t i = 0; i < n_dims; ++i) t.shape.push_back(int64_t(ne[n_dims - 1 - i]));

  t.ggml_type = c.read<uint32_t>("a tensor's type");
  const auto dtype = dtype_from_ggml_type(t.ggml_type);
  t.readable = dtype.has_value();
  t.dtype = dtype.value_or(DType::Packed);
  const auto numel = checked_numel(t.shape);
  if (!numel)
    c.fail(who + " has shape " + shape_string(t.shape) + ", whose element count overflows",
           dims_at);
  // Types MCW cannot decode are still placed (their extent checked) when ggml defines their
  // block; a code nobody defines has no known extent and takes no bytes.
  const auto layout = ggml_block_layout(t.ggml_type);
  if (!layout) {
    t.bytes = 0;
  } else {
    const std::string type_name(ggml_type_name(t.ggml_type));
    if (n_dims > 0 && ne[0] % uint64_t(layout->block) != 0)
      c.fail(who + " has rows of " + std::to_string(ne[0]) + " values, not whole " + type_name +
                 " blocks of " + std::to_string(layout->block),
             dims_at);
    const uint64_t blocks = *numel / uint64_t(layout->block);
    if (*numel % uint64_t(layout->block) ||
        blocks > (uint64_t(1) << 62) / uint64_t(layout->block_bytes))
      c.fail(who + " of shape " + shape_string(t.shape) + " is not a valid " + type_name + " size",
             dims_at);
    t.bytes = blocks * uint64_t(layout->block_bytes);
  }
  t.offset_at = c.pos();
  t.offset = c.read<uint64_t>("a tensor's data offset");
  return t;
}

uint64_t read_alignment(const Cursor& c, const GGUFFile& f) {
  const GGUFKeyValue* kv = f.find("general.alignment");
  if (!kv) return 32;
  const auto a = kv->value.as_u64();
  if (!gguf_type_is_integer(kv->value.type()) || !a)
    c.fail("general.alignment must be a UINT32, not " +
               std::string(gguf_type_name(kv->value.type())),
           uint64_t(kv->offset));
  if (*a == 0 || (*a & (*a - 1)) != 0)
    c.fail("general.alignment is " + std::to_string(*a) + "; it must be a non-zero power of two",
           uint64_t(kv->offset));
  return *a;
}

// A tensor of a type MCW lists but does not decode: any read names the file, the tensor
// and the type.
class UnreadableType final : public TensorDecoder {
 public:
  UnreadableType(std::string path, std::string tensor, uint32_t type)
      : path_(std::move(path)), tensor_(std::move(tensor)), type_(type) {}
  void decode(size_t, size_t, float*) const override {
    throw Error(path_, "tensor " + in_quotes(tensor_) + " has " + type_text() +
                           ", which MCW cannot read yet");
  }
  bool readable() const override { return false; }
  std::string describe() const override { return type_text() + ", not read by MCW"; }

 private:
  std::string type_text() const {
    const std::string_view name = ggml_type_name(type_);
    return name.empty() ? "unknown ggml type " + std::to_string(type_)
                        : "type " + std::string(name) + " (" + std::to_string(type_) + ")";
  }
  std::string path_, tensor_;
  uint32_t type_;
};

Tensor unreadable_tensor(const std::string& path, TensorInfo& t) {
  return Tensor::decoded(std::move(t.shape),
                         std::make_shared<UnreadableType>(path, t.name, t.ggml_type),
                         size_t(t.bytes), t.name);
}

// Checks offsets against the data section and each other, then makes the views.
void place_tensors(const Cursor& c, GGUFFile& f, std::vector<TensorInfo>& infos) {
  const uint64_t end_of_infos = c.pos();
  if (end_of_infos > UINT64_MAX - (f.alignment - 1))
    c.fail("alignment " + std::to_string(f.alignment) + " is too large", end_of_infos);
  f.data_offset = (end_of_infos + f.alignment - 1) / f.alignment * f.alignment;
  if (!infos.empty() && f.data_offset > c.size())
    c.fail("file is truncated: it ends before the tensor data section at byte " +
               std::to_string(f.data_offset),
           end_of_infos);
  const uint64_t data_size = f.data_offset <= c.size() ? c.size() - f.data_offset : 0;

  for (const TensorInfo& t : infos) {
    const std::string who = "tensor " + in_quotes(t.name);
    if (t.offset % f.alignment != 0)
      c.fail(who + " has offset " + std::to_string(t.offset) +
                 ", not a multiple of the alignment " + std::to_string(f.alignment),
             t.offset_at);
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      c.fail(who + " (" + std::to_string(t.bytes) + " bytes at offset " + std::to_string(t.offset) +
                 ") extends past the end of the data section (" + std::to_string(data_size) +
                 " bytes; the file may be truncated)",
             t.offset_at);
  }
  std::vector<const TensorInfo*> order;
  order.reserve(infos.size());
  for (const TensorInfo& t : infos)
    if (t.bytes > 0) order.push_back(&t);  // an empty range overlaps nothing
  std::sort(order.begin(), order.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i - 1]->offset + order[i - 1]->bytes > order[i]->offset)
      c.fail("tensors " + in_quotes(order[i - 1]->name) + " and " + in_quotes(order[i]->name) +
                 " overlap in the data section",
             order[i]->offset_at);

  std::shared_ptr<const void> owner = f.file;
  f.tensors.reserve(infos.size());
  f.tensor_offsets.reserve(infos.size());
  for (TensorInfo& t : infos) {
    if (!t.readable) {
      f.tensors.push_back(unreadable_tensor(c.path(), t));
      f.tensor_offsets.push_back(t.offset);
      continue;
    }
    const std::byte* p = c.at(f.data_offset + t.offset);
    f.tensors.push_back(Tensor::view(t.dtype, std::move(t.shape), p, size_t(t.bytes), owner,
                                     std::move(t.name)));
    f.tensor_offsets.push_back(t.offset);
  }
}

}  // namespace

GGUFFile read_gguf(const std::string& path) {
  GGUFFile f;
  f.path = path;
  f.file = MappedFile::open(path);
  Cursor c(path, f.file->data(), f.file->size());
  read_header(c, f);

  const uint64_t tensor_count_at = c.pos();
  const uint64_t tensor_count = c.read<uint64_t>("the tensor count");
  const uint64_t kv_count_at = c.pos();
  const uint64_t kv_count = c.read<uint64_t>("the key/value count");
  c.check_count(kv_count, kMinKeyValueBytes, "kv_count", kv_count_at);

  reserve_within(f.kvs, kv_count, c.remaining());
  std::unordered_set<std::string> keys;
  for (uint64_t i = 0; i < kv_count; ++i) {
    const uint64_t start = c.pos();
    std::string key = c.read_string("a key");
    if (!is_valid_utf8(key)) c.fail("key is not valid UTF-8", start);
    if (!keys.insert(key).second) c.fail("key " + in_quotes(key) + " appears twice", start);
    const GGUFType type = read_value_type(c, key, "value type");
    GGUFValue value = read_value(c, type, key);
    f.kvs.push_back({std::move(key), std::move(value), int64_t(start)});
  }
  f.alignment = read_alignment(c, f);

  // Checked only now, so that a file cut inside its key/values is reported there.
  c.check_count(tensor_count, kMinTensorInfoBytes, "tensor_count", tensor_count_at);
  std::vector<TensorInfo> infos;
  reserve_within(infos, tensor_count, c.remaining());
  std::unordered_set<std::string> names;
  for (uint64_t i = 0; i < tensor_count; ++i) {
    const uint64_t start = c.pos();
    infos.push_back(read_tensor_info(c));
    if (!names.insert(infos.back().name).second)
      c.fail("tensor " + in_quotes(infos.back().name) + " appears twice", start);
  }
  place_tensors(c, f, infos);
  return f;
}

ModelFile read_gguf_model(const std::string& path) {
  GGUFFile g = read_gguf(path);
  ModelFile m;
  m.format = ModelFormat::GGUF;
  m.path = path;
  if (g.has("general.architecture"))
    m.architecture = gguf_value_to_json(g.get_string("general.architecture")).get<std::string>();
  for (const GGUFKeyValue& kv : g.kvs) {
    nlohmann::ordered_json j = gguf_value_to_json(kv.value);
    if (kv.key.starts_with("general.") && j.is_string() && kv.value.as_string())
      m.metadata[kv.key] = j.get<std::string>();
    m.hparams[kv.key] = std::move(j);
  }
  m.tensors = std::move(g.tensors);
  return m;
}

}  // namespace mcw
