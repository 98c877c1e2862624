// GGUF v3 writer: header, key/values and tensor infos are built in memory, then tensor
// data is streamed after them, each tensor padded to the alignment.
#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_set>

#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/gguf.h"

namespace mcw {

static_assert(std::endian::native == std::endian::little, "GGUF writing assumes little-endian");

namespace {

constexpr int kMaxArrayDepth = 8;          // what the reader accepts
constexpr size_t kMaxKeyBytes = 65535;     // the spec's limit
constexpr size_t kMaxTensorNameBytes = 63; // llama.cpp keeps names in 64-byte buffers
constexpr uint64_t kChunkBytes = uint64_t(16) << 20;  // tensor data produced per fill() call

class Buffer {
 public:
  template <class T>
  void put(T x) {
    const size_t n = bytes_.size();
    bytes_.resize(n + sizeof(T));
    std::memcpy(bytes_.data() + n, &x, sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  template <class T>
  void put_all(const std::vector<T>& v) {
    const size_t n = bytes_.size();
    bytes_.resize(n + v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(bytes_.data() + n, v.data(), v.size() * sizeof(T));
  }
  const std::vector<char>& bytes() const { return bytes_; }

 private:
  std::vector<char> bytes_;
};

void put_array(Buffer& b, const GGUFArray& a, const std::string& path, const std::string& key,
               int depth) {
  if (depth > kMaxArrayDepth)
    throw Error(path, "key '" + key + "' nests arrays more than " +
                          std::to_string(kMaxArrayDepth) + " deep");
  b.put<uint32_t>(uint32_t(a.element_type()));
  b.put<uint64_t>(a.size());
  std::visit(
      [&](const auto& items) {
        using T = typename std::decay_t<decltype(items)>::value_type;
        if constexpr (std::is_same_v<T, GGUFArray>) {
          for (const GGUFArray& inner : items) put_array(b, inner, path, key, depth + 1);
        } else if constexpr (std::is_same_v<T, std::string>) {
          for (const std::string& s : items) b.put_string(s);
        } else if constexpr (std::is_same_v<T, bool>) {
          for (bool x : items) b.put<uint8_t>(x ? 1 : 0);
        } else {
          b.put_all(items);
        }
      },
      a.items);
}

void put_value(Buffer& b, const GGUFValue& v, const std::string& path, const std::string& key) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, GGUFArray>) put_array(b, x, path, key, 1);
        else if constexpr (std::is_same_v<T, std::string>) b.put_string(x);
        else if constexpr (std::is_same_v<T, bool>) b.put<uint8_t>(x ? 1 : 0);
        else b.put<T>(x);
      },
      v.v);
}

void check_key(const std::string& path, const std::string& key,
               std::unordered_set<std::string>& seen) {
  if (key.size() > kMaxKeyBytes)
    throw Error(path, "key '" + key.substr(0, 64) + "...' is longer than 65535 bytes");
  if (!is_valid_utf8(key)) throw Error(path, "a key is not valid UTF-8");
  if (!seen.insert(key).second) throw Error(path, "key '" + key + "' is given twice");
}

// The general.alignment the file must carry, or nullopt when the default (32) applies.
std::optional<GGUFKeyValue> alignment_kv(const std::string& path,
                                         const std::vector<GGUFKeyValue>& kvs,
                                         uint64_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    throw Error(path, "alignment " + std::to_string(alignment) + " is not a power of two");
  for (const GGUFKeyValue& kv : kvs) {
    if (kv.key != "general.alignment") continue;
    if (kv.value.type() != GGUFType::UINT32 || kv.value.as_u64() != alignment)
      throw Error(path, "general.alignment in the key/values does not match the alignment " +
                            std::to_string(alignment) + " (it must be a UINT32 equal to it)");
    return std::nullopt;
  }
  if (alignment == 32) return std::nullopt;
  if (alignment > UINT32_MAX)
    throw Error(path, "alignment " + std::to_string(alignment) + " does not fit general.alignment");
  return GGUFKeyValue{"general.alignment", GGUFValue(uint32_t(alignment))};
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

Tensor gguf_tensor_from_f32(const Tensor& t, const std::string& name, DType dtype) {
  if (is_block_type(dtype) && t.shape().back() % kQBlock) dtype = DType::F32;
  if (t.dtype() == dtype) {  // already in the wanted type: shares its bytes
    Tensor same = t;
    same.set_name(name);
    return same;
  }
  Tensor out = Tensor::zeros(dtype, t.shape(), name);
  if (t.dtype() == DType::F32) {
    from_f32(dtype, t.as<float>(), out.mutable_data(), size_t(t.numel()));
  } else {
    const std::vector<float> v = t.to_f32();
    from_f32(dtype, v.data(), out.mutable_data(), v.size());
  }
  return out;
}

void write_gguf_streamed(const std::string& path, const std::vector<GGUFKeyValue>& kvs,
                         const std::vector<GgufTensorOut>& tensors, uint64_t alignment) {
  const std::optional<GGUFKeyValue> extra = alignment_kv(path, kvs, alignment);

  Buffer head;
  head.put<uint32_t>(0x46554747u);  // "GGUF" read as a little-endian u32
  head.put<uint32_t>(3);
  head.put<uint64_t>(tensors.size());
  head.put<uint64_t>(kvs.size() + (extra ? 1 : 0));

  std::unordered_set<std::string> keys;
  auto put_kv = [&](const GGUFKeyValue& kv) {
    check_key(path, kv.key, keys);
    head.put_string(kv.key);
    head.put<uint32_t>(uint32_t(kv.value.type()));
    put_value(head, kv.value, path, kv.key);
  };
  for (const GGUFKeyValue& kv : kvs) put_kv(kv);
  if (extra) put_kv(*extra);

  std::unordered_set<std::string> names;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const GgufTensorOut& t : tensors) {
    const std::string who = "tensor '" + t.name + "'";
    const auto ggml_type = ggml_type_from_dtype(t.dtype);
    if (!ggml_type)
      throw Error(path, who + " has type " + std::string(dtype_name(t.dtype)) +
                            ", which GGUF cannot store");
    if (t.shape.size() > 4)
      throw Error(path, who + " has " + std::to_string(t.shape.size()) +
                            " dimensions; GGUF allows at most 4");
    if (t.name.size() > kMaxTensorNameBytes)
      throw Error(path, who + " has a name longer than " + std::to_string(kMaxTensorNameBytes) +
                            " bytes, which llama.cpp cannot load");
    if (!is_valid_utf8(t.name)) throw Error(path, "a tensor name is not valid UTF-8");
    if (!names.insert(t.name).second) throw Error(path, who + " is given twice");
    const int block = dtype_info(t.dtype).block;
    const int64_t row = t.shape.empty() ? 1 : t.shape.back();
    if (row % block != 0)
      throw Error(path, who + " has rows of " + std::to_string(row) +
                            " values, not whole blocks of " + std::to_string(block));
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    sizes.push_back(uint64_t(numel / block) * uint64_t(dtype_info(t.dtype).block_bytes));
    head.put_string(t.name);
    head.put<uint32_t>(uint32_t(t.shape.size()));
    for (size_t i = t.shape.size(); i-- > 0;) head.put<uint64_t>(uint64_t(t.shape[i]));
    head.put<uint32_t>(*ggml_type);
    head.put<uint64_t>(offset);
    offset = align_up(offset + sizes.back(), alignment);
  }

  AtomicFile out(path);
  out.write(head.bytes().data(), head.bytes().size());
  out.write_zeros(size_t(align_up(out.position(), alignment) - out.position()));
  std::vector<char> chunk;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorOut& t = tensors[i];
    int64_t rows = 1;  // every dimension but the innermost
    for (size_t d = 0; d + 1 < t.shape.size(); ++d) rows *= t.shape[d];
    const uint64_t row_bytes = rows ? sizes[i] / uint64_t(rows) : 0;
    // Rows are produced a chunk at a time (about kChunkBytes), so a 2 GB embedding is
    // never held whole.
    const int64_t per_chunk = row_bytes ? std::max<int64_t>(1, int64_t(kChunkBytes / row_bytes)) : 1;
    for (int64_t r = 0; r < rows; r += per_chunk) {
      const int64_t n = std::min(per_chunk, rows - r);
      chunk.resize(size_t(uint64_t(n) * row_bytes));
      t.fill(r, n, chunk.data());
      out.write(chunk.data(), chunk.size());
    }
    out.write_zeros(size_t(align_up(sizes[i], alignment) - sizes[i]));
  }
  out.commit();
}

void write_gguf(const std::string& path, const std::vector<GGUFKeyValue>& kvs,
                const std::vector<Tensor>& tensors, uint64_t alignment) {
  std::vector<GgufTensorOut> outs;
  for (const Tensor& t : tensors) {
    int64_t rows = 1;
    for (size_t d = 0; d + 1 < t.ndim(); ++d) rows *= t.dim(d);
    const size_t row_bytes = rows ? t.nbytes() / size_t(rows) : 0;
    outs.push_back({t.name(), t.dtype(), t.shape(), [&t, row_bytes](int64_t r, int64_t n, void* dst) {
                      std::memcpy(dst, static_cast<const char*>(t.data()) + size_t(r) * row_bytes,
                                  size_t(n) * row_bytes);
                    }});
  }
  write_gguf_streamed(path, kvs, outs, alignment);
}

}  // namespace mcw
