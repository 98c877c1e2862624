#include "engine/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <set>

#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/json_text.h"
#include "engine/io/safetensors_stream.h"

namespace mcw {

static_assert(std::endian::native == std::endian::little,
              "tensor bytes are stored little-endian and copied as they are");

namespace {

using Json = nlohmann::ordered_json;

constexpr int64_t kHeaderStart = 8;
// The reference implementation refuses headers over 100 MB; a real one is a few MB at most.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests three deep (top object, entry, shape); the bound leaves room for
// harmless extras while keeping hostile nesting cheap.
constexpr int kMaxHeaderDepth = 8;

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

std::string quoted(const std::string& name) { return "tensor '" + printable(name) + "'"; }

std::string offsets_string(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

const Json& require_key(const Json& entry, const char* key, const std::string& path,
                        const std::string& name) {
  auto it = entry.find(key);
  if (it == entry.end())
    throw Error(path, quoted(name) + ": missing key '" + key + "'", kHeaderStart);
  return *it;
}

DType parse_dtype(const Json& entry, const std::string& path, const std::string& name) {
  const Json& j = require_key(entry, "dtype", path, name);
  if (!j.is_string())
    throw Error(path, quoted(name) + ": 'dtype' is a " + j.type_name() + ", expected a string",
                kHeaderStart);
  const std::string& s = j.get_ref<const std::string&>();
  // Block types share the DType enum but are no safetensors dtype.
  const auto dtype = dtype_from_name(s);
  if (!dtype || is_block_type(*dtype))
    throw Error(path, quoted(name) + ": unknown dtype '" + s + "'", kHeaderStart);
  return *dtype;
}

Shape parse_shape(const Json& entry, const std::string& path, const std::string& name) {
  const Json& j = require_key(entry, "shape", path, name);
  if (!j.is_array())
    throw Error(path, quoted(name) + ": 'shape' is a " + j.type_name() +
                          ", expected an array of dimensions", kHeaderStart);
  Shape shape;
  shape.reserve(j.size());  // bounded by the header's length, which fits in the file
  for (const Json& d : j) {
    if (d.is_number_unsigned()) {
      const uint64_t v = d.get<uint64_t>();
      if (v > uint64_t(std::numeric_limits<int64_t>::max()))
        throw Error(path, quoted(name) + ": dimension " + std::to_string(v) + " is too large",
                    kHeaderStart);
      shape.push_back(int64_t(v));
    } else if (d.is_number_integer()) {
      throw Error(path, quoted(name) + ": negative dimension " + d.dump() + " in shape",
                  kHeaderStart);
    } else {
      throw Error(path, quoted(name) + ": shape holds " + d.dump() +
                            ", expected non-negative integers", kHeaderStart);
    }
  }
  return shape;
}

void parse_offsets(const Json& entry, const std::string& path, const std::string& name,
                   uint64_t& begin, uint64_t& end) {
  const Json& j = require_key(entry, "data_offsets", path, name);
  if (!j.is_array() || j.size() != 2 || !j[0].is_number_unsigned() ||
      !j[1].is_number_unsigned())
    throw Error(path, quoted(name) + ": 'data_offsets' is " + j.dump() +
                          ", expected [begin, end] with non-negative integers", kHeaderStart);
  begin = j[0].get<uint64_t>();
  end = j[1].get<uint64_t>();
}

void parse_metadata(const Json& j, const std::string& path,
                    std::map<std::string, std::string>& out) {
  if (!j.is_object())
    throw Error(path, "__metadata__ is a " + std::string(j.type_name()) +
                          ", expected an object of strings", kHeaderStart);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string())
      throw Error(path, "__metadata__ '" + printable(it.key()) + "' is a " +
                            it.value().type_name() + ", expected a string", kHeaderStart);
    out[it.key()] = it.value().get<std::string>();
  }
}

// Checks one entry against the data section; `data_start` is its file offset.
Entry parse_entry(const std::string& name, const Json& j, const std::string& path,
                  uint64_t data_size, uint64_t data_start) {
  if (!j.is_object())
    throw Error(path, quoted(name) + ": entry is a " + j.type_name() +
                          ", expected an object with dtype, shape and data_offsets",
                kHeaderStart);
  Entry e{name, parse_dtype(j, path, name), parse_shape(j, path, name), 0, 0};
  parse_offsets(j, path, name, e.begin, e.end);

  const auto numel = checked_numel(e.shape);
  const auto bytes = numel ? dtype_bytes(e.dtype, *numel) : std::nullopt;
  if (!bytes)
    throw Error(path, quoted(name) + ": shape " + shape_string(e.shape) +
                          " overflows (more than 2^62 elements or bytes)", kHeaderStart);
  const std::string offsets = offsets_string(e.begin, e.end);
  if (e.begin > e.end)
    throw Error(path, quoted(name) + ": data_offsets " + offsets + " begin after they end",
                kHeaderStart);
  if (e.end > data_size)
    throw Error(path, quoted(name) + ": data_offsets " + offsets +
                          " lie beyond the data section (" + std::to_string(data_size) +
                          " bytes)", kHeaderStart);
  if (e.end - e.begin != *bytes)
    throw Error(path, quoted(name) + ": data_offsets " + offsets + " hold " +
                          std::to_string(e.end - e.begin) + " bytes, but " +
                          std::string(dtype_name(e.dtype)) + " " + shape_string(e.shape) +
                          " needs " + std::to_string(*bytes),
                int64_t(data_start + e.begin));
  return e;
}

uint64_t read_le64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | uint64_t(p[i]);
  return v;
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path) {
  SafetensorsFile out;
  out.file = MappedFile::open(path);
  const std::byte* bytes = out.file->data();
  const uint64_t size = out.file->size();
  if (size < 8)
    throw Error(path, "file is " + std::to_string(size) +
                          " bytes, too short for the 8-byte header length of a safetensors file",
                0);
  const uint64_t header_len = read_le64(bytes);
  if (header_len > size - 8)
    throw Error(path, "header length " + std::to_string(header_len) +
                          " runs past the end of the file (" + std::to_string(size - 8) +
                          " bytes follow the length)", 0);
  if (header_len > kMaxHeaderBytes)
    throw Error(path, "header length " + std::to_string(header_len) + " exceeds the " +
                          std::to_string(kMaxHeaderBytes) + "-byte limit", 0);
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;

  const std::string_view text(reinterpret_cast<const char*>(bytes) + kHeaderStart,
                              size_t(header_len));
  JsonTextOptions options;
  options.max_depth = kMaxHeaderDepth;
  options.reject_duplicate_keys = true;  // two readers must not see different tensors
  options.what = "the header";
  options.utf8_hint = "tensor names and metadata must be UTF-8 text";
  const Json header = parse_json_text(text, path, kHeaderStart, options);
  if (!header.is_object())
    throw Error(path, "the header is a JSON " + std::string(header.type_name()) +
                          ", expected a JSON object of tensors", kHeaderStart);

  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__")
      parse_metadata(it.value(), path, out.metadata);
    else
      entries.push_back(parse_entry(it.key(), it.value(), path, data_size, data_start));
  }

  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < entries.size(); ++i) {
    const Entry& prev = entries[i - 1];
    const Entry& cur = entries[i];
    if (prev.end > cur.begin)
      throw Error(path, quoted(cur.name) + ": data_offsets " + offsets_string(cur.begin, cur.end) +
                            " overlap " + quoted(prev.name) + " at " +
                            offsets_string(prev.begin, prev.end),
                  int64_t(data_start + cur.begin));
  }

  const std::byte* data = bytes + data_start;
  out.tensors.reserve(entries.size());
  for (Entry& e : entries)
    out.tensors.push_back(Tensor::view(e.dtype, std::move(e.shape), data + e.begin,
                                       size_t(e.end - e.begin), out.file, std::move(e.name)));
  return out;
}

void write_safetensors(const std::string& path, const std::vector<Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Each tensor's bytes against its dtype and shape; safetensors_header checks the names
  // and metadata and lays out the offsets.
  std::vector<SafetensorsEntry> entries;
  entries.reserve(tensors.size());
  for (const Tensor& t : tensors) {
    const std::string& name = t.name();
    if (is_block_type(t.dtype()))
      throw Error(path, quoted(name) + ": " + std::string(dtype_name(t.dtype())) +
                            " is a block type, not a safetensors dtype (store packed codes as "
                            "U8)");
    const auto numel = checked_numel(t.shape());
    const auto bytes = numel ? dtype_bytes(t.dtype(), *numel) : std::nullopt;
    if (!bytes || *bytes != t.nbytes() || (t.nbytes() > 0 && !t.data()))
      throw Error(path, quoted(name) + ": holds " + std::to_string(t.nbytes()) +
                            " bytes, which does not match " + std::string(dtype_name(t.dtype())) +
                            " " + shape_string(t.shape()));
    entries.push_back({name, t.dtype(), t.shape()});
  }
  const std::string text = safetensors_header(path, entries, metadata);

  unsigned char len[8];
  for (int i = 0; i < 8; ++i)
    len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
  AtomicFile out(path);
  out.write(len, sizeof len);
  out.write(text.data(), text.size());
  for (const Tensor& t : tensors) out.write(t.data(), t.nbytes());
  out.commit();
}

}  // namespace mcw
