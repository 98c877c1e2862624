// GGUF (ggml's single-file model format), versions 2 and 3: key/values, tensor infos with
// offsets into an aligned data section, tensors as views into the memory-mapped file.
// Tensor shapes are converted to MCW's outermost-first order (GGUF stores innermost first).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/core/mapped_file.h"
#include "engine/core/tensor.h"
#include "engine/io/model_file.h"

namespace mcw {

// The codes GGUF writes for value types; the order of the variants below follows them.
enum class GGUFType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
constexpr uint32_t kGGUFTypeCount = 13;
std::string_view gguf_type_name(GGUFType t);  // "UINT8", ..., "FLOAT64"
bool gguf_type_is_integer(GGUFType t);       // the eight integer types (not BOOL)

struct GGUFArray;

// An array's elements, one typed vector; variant index == GGUFType of the elements.
// Arrays of arrays hold one GGUFArray per element, each with its own element type.
using GGUFArrayItems =
    std::variant<std::vector<uint8_t>, std::vector<int8_t>, std::vector<uint16_t>,
                 std::vector<int16_t>, std::vector<uint32_t>, std::vector<int32_t>,
                 std::vector<float>, std::vector<bool>, std::vector<std::string>,
                 std::vector<GGUFArray>, std::vector<uint64_t>, std::vector<int64_t>,
                 std::vector<double>>;

struct GGUFArray {
  GGUFArrayItems items;
  GGUFType element_type() const { return GGUFType(items.index()); }
  size_t size() const;
  bool operator==(const GGUFArray&) const = default;
};

// One value of any GGUF type; variant index == GGUFType. Construct from the exact C++ type
// (uint32_t{7}, std::string("llama"), GGUFArray{std::vector<float>{...}}, ...).
struct GGUFValue {
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float,
                               bool, std::string, GGUFArray, uint64_t, int64_t, double>;
  Storage v;

  GGUFValue() = default;
  template <class T>
    requires(!std::is_same_v<std::remove_cvref_t<T>, GGUFValue> &&
             std::is_constructible_v<Storage, T &&>)
  GGUFValue(T&& x) : v(std::forward<T>(x)) {}  // NOLINT: implicit on purpose
  template <class T>
  static GGUFValue array(std::vector<T> items) { return GGUFValue(GGUFArray{std::move(items)}); }

  GGUFType type() const { return GGUFType(v.index()); }
  const GGUFArray* as_array() const { return std::get_if<GGUFArray>(&v); }
  const std::string* as_string() const { return std::get_if<std::string>(&v); }
  // The value of an integer type, or nullopt (other types; u64 above INT64_MAX for the signed
  // one, negatives for the unsigned one).
  std::optional<int64_t> as_i64() const;
  std::optional<uint64_t> as_u64() const;
  std::optional<double> as_f64() const;  // integer and float types
  bool operator==(const GGUFValue&) const = default;
};

// The value as JSON (numbers, bools, strings, arrays, arrays of arrays). Arrays longer than
// max_array become the string "array of N <type>" ("array of 32000 string"); strings that
// are not valid UTF-8 get U+FFFD in place of bad bytes, so the JSON can always be dumped.
nlohmann::ordered_json gguf_value_to_json(const GGUFValue& value, size_t max_array = 16);

struct GGUFKeyValue {
  std::string key;
  GGUFValue value;
  int64_t offset = -1;  // where the key/value starts in the file it was read from
};

struct GGUFFile {
  std::string path;
  uint32_t version = 3;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;             // start of the data section, from the file's start
  std::vector<GGUFKeyValue> kvs;        // in file order
  std::vector<Tensor> tensors;          // in file order; views into `file`
  std::vector<uint64_t> tensor_offsets; // each tensor's offset relative to data_offset
  std::shared_ptr<const MappedFile> file;

  const GGUFKeyValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters. A missing key or a value of the wrong type throws mcw::Error naming the
  // file, the key's byte offset, the key and the type found ("key 'llama.block_count' is a
  // STRING, expected an integer"). The two-argument forms return `fallback` when the key is
  // missing but still throw on a wrong type.
  const std::string& get_string(std::string_view key) const;
  std::string get_string(std::string_view key, const std::string& fallback) const;
  uint64_t get_u64(std::string_view key) const;  // any integer type, value >= 0
  uint64_t get_u64(std::string_view key, uint64_t fallback) const;
  int64_t get_i64(std::string_view key) const;
  int64_t get_i64(std::string_view key, int64_t fallback) const;
  double get_f64(std::string_view key) const;  // any integer or float type
  double get_f64(std::string_view key, double fallback) const;
  bool get_bool(std::string_view key) const;
  bool get_bool(std::string_view key, bool fallback) const;
  const GGUFArray& get_array(std::string_view key) const;
  const std::vector<std::string>& get_string_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;  // float or integer items
  std::vector<int64_t> get_int_array(std::string_view key) const;  // integer items

  const Tensor* find_tensor(std::string_view name) const;
};

// Reads and validates the whole structure; tensor data stays mapped, not copied. Throws
// mcw::Error(path, problem, byte offset) for anything malformed or unsupported.
GGUFFile read_gguf(const std::string& path);

// The file as a ModelFile: architecture from general.architecture, every key/value in
// hparams (see gguf_value_to_json), string values under general.* in metadata.
ModelFile read_gguf_model(const std::string& path);

// An f32 tensor converted to `dtype` for writing; block types (Q8_0, Q4_0, ...) need whole
// 32-value rows, so a tensor whose rows are not a multiple of 32 stays F32.
Tensor gguf_tensor_from_f32(const Tensor& t, const std::string& name, DType dtype);

// Writes a GGUF v3 file atomically. Tensor types: every DType ggml_type_from_dtype maps
// (others throw). `alignment` must be a power of two; when it is not 32,
// general.alignment is added unless `kvs` already holds it (then it must agree).
void write_gguf(const std::string& path, const std::vector<GGUFKeyValue>& kvs,
                const std::vector<Tensor>& tensors, uint64_t alignment = 32);

// A tensor whose data is produced while the file is written: fill(first_row, rows, dst)
// writes rows [first_row, first_row + rows) (rows: every dimension but the innermost) in
// `dtype`'s bytes to dst. Used to write models far larger than memory, a chunk of rows at
// a time.
struct GgufTensorOut {
  std::string name;
  DType dtype;
  Shape shape;  // outermost first, as Tensor
  std::function<void(int64_t first_row, int64_t rows, void* dst)> fill;
};
// write_gguf with streamed tensors (every GGUF tensor type MCW knows).
void write_gguf_streamed(const std::string& path, const std::vector<GGUFKeyValue>& kvs,
                         const std::vector<GgufTensorOut>& tensors, uint64_t alignment = 32);

// ggml tensor type codes as GGUF stores them, and their names ("Q4_K"); nullopt / "" for
// codes ggml does not define.
std::optional<DType> dtype_from_ggml_type(uint32_t ggml_type);
std::optional<uint32_t> ggml_type_from_dtype(DType t);
std::string_view ggml_type_name(uint32_t ggml_type);
// Values and bytes per block of a ggml type, including the types MCW lists but cannot
// decode (IQ1/IQ2/IQ3, TQ, MXFP4, ...), so their extent in a file can still be checked;
// nullopt for codes ggml does not define (or no longer writes).
struct GgmlBlockLayout {
  int block, block_bytes;
};
std::optional<GgmlBlockLayout> ggml_block_layout(uint32_t ggml_type);

// Strict UTF-8 check (no overlongs, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view s);

}  // namespace mcw
