// GGUF values and types: names, conversions, JSON, and GGUFFile's typed getters.
#include <array>
#include <limits>

#include "engine/core/error.h"
#include "engine/io/gguf.h"

namespace mcw {

std::string_view gguf_type_name(GGUFType t) {
  static constexpr std::array<std::string_view, kGGUFTypeCount> kNames = {
      "UINT8", "INT8",  "UINT16", "INT16", "UINT32", "INT32",  "FLOAT32",
      "BOOL",  "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};
  const auto i = uint32_t(t);
  return i < kNames.size() ? kNames[i] : std::string_view("?");
}

bool gguf_type_is_integer(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::UINT16: case GGUFType::INT16:
    case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::UINT64: case GGUFType::INT64:
      return true;
    default:
      return false;
  }
}

size_t GGUFArray::size() const {
  return std::visit([](const auto& v) { return v.size(); }, items);
}

namespace {

template <class T>
constexpr bool kIsInteger = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// A signed and an unsigned view of one integer value, each valid only when in range.
struct IntValue {
  bool is_int = false;
  bool negative = false;
  uint64_t magnitude = 0;  // the value itself when not negative
  int64_t signed_value = 0;
};

template <class T>
IntValue int_value(const T& x) {
  IntValue r;
  if constexpr (kIsInteger<T>) {
    r.is_int = true;
    if constexpr (std::is_signed_v<T>) {
      r.negative = x < 0;
      r.signed_value = int64_t(x);
      r.magnitude = r.negative ? 0 : uint64_t(x);
    } else {
      r.magnitude = uint64_t(x);
      r.signed_value = int64_t(x);  // only meaningful when magnitude <= INT64_MAX
    }
  }
  return r;
}

}  // namespace

std::optional<int64_t> GGUFValue::as_i64() const {
  const IntValue r = std::visit([](const auto& x) { return int_value(x); }, v);
  if (!r.is_int) return std::nullopt;
  if (!r.negative && r.magnitude > uint64_t(std::numeric_limits<int64_t>::max()))
    return std::nullopt;
  return r.signed_value;
}

std::optional<uint64_t> GGUFValue::as_u64() const {
  const IntValue r = std::visit([](const auto& x) { return int_value(x); }, v);
  if (!r.is_int || r.negative) return std::nullopt;
  return r.magnitude;
}

std::optional<double> GGUFValue::as_f64() const {
  return std::visit(
      [](const auto& x) -> std::optional<double> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (kIsInteger<T> || std::is_floating_point_v<T>) return double(x);
        return std::nullopt;
      },
      v);
}

bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else return false;
    if (len > n - i) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// Keeps valid sequences and replaces each invalid byte with U+FFFD.
static std::string sanitize_utf8(const std::string& s) {
  if (is_valid_utf8(s)) return s;
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 1;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0xF0) len = 4;
    else if (c >= 0xE0) len = 3;
    else if (c >= 0xC0) len = 2;
    if (i + len <= s.size() && is_valid_utf8(std::string_view(s).substr(i, len))) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

static std::string lowercase(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return r;
}

template <class T>
static nlohmann::ordered_json scalar_json(const T& x) {
  if constexpr (std::is_same_v<T, std::string>) return sanitize_utf8(x);
  else return x;
}

static nlohmann::ordered_json array_json(const GGUFArray& a, size_t max_array) {
  if (a.size() > max_array)
    return "array of " + std::to_string(a.size()) + " " +
           lowercase(gguf_type_name(a.element_type()));
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  std::visit(
      [&](const auto& items) {
        using T = typename std::decay_t<decltype(items)>::value_type;
        for (size_t i = 0; i < items.size(); ++i) {
          if constexpr (std::is_same_v<T, GGUFArray>)
            out.push_back(array_json(items[i], max_array));
          else if constexpr (std::is_same_v<T, bool>) out.push_back(bool(items[i]));
          else out.push_back(scalar_json(items[i]));
        }
      },
      a.items);
  return out;
}

nlohmann::ordered_json gguf_value_to_json(const GGUFValue& value, size_t max_array) {
  return std::visit(
      [&](const auto& x) -> nlohmann::ordered_json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, GGUFArray>) return array_json(x, max_array);
        else return scalar_json(x);
      },
      value.v);
}

// ---- ggml tensor types ----------------------------------------------------------------

static constexpr std::array<std::string_view, 43> kGgmlTypeNames = {
    "F32",     "F16",     "Q4_0",     "Q4_1",     "Q4_2",     "Q4_3",       "Q5_0",
    "Q5_1",    "Q8_0",    "Q8_1",     "Q2_K",     "Q3_K",     "Q4_K",       "Q5_K",
    "Q6_K",    "Q8_K",    "IQ2_XXS",  "IQ2_XS",   "IQ3_XXS",  "IQ1_S",      "IQ4_NL",
    "IQ3_S",   "IQ2_S",   "IQ4_XS",   "I8",       "I16",      "I32",        "I64",
    "F64",     "IQ1_M",   "BF16",     "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8",   "TQ1_0",
    "TQ2_0",   "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4",   "NVFP4",
    "Q1_0",    "Q2_0"};

std::string_view ggml_type_name(uint32_t ggml_type) {
  return ggml_type < kGgmlTypeNames.size() ? kGgmlTypeNames[ggml_type] : std::string_view();
}

namespace {
struct GgmlPair { uint32_t ggml; DType dtype; };
constexpr std::array<GgmlPair, 20> kGgmlPairs = {{
    {0, DType::F32},   {1, DType::F16},   {2, DType::Q4_0},  {3, DType::Q4_1},
    {6, DType::Q5_0},  {7, DType::Q5_1},  {8, DType::Q8_0},  {10, DType::Q2_K},
    {11, DType::Q3_K}, {12, DType::Q4_K}, {13, DType::Q5_K}, {14, DType::Q6_K},
    {20, DType::IQ4_NL}, {23, DType::IQ4_XS},
    {24, DType::I8},   {25, DType::I16},  {26, DType::I32},  {27, DType::I64},
    {28, DType::F64},  {30, DType::BF16},
}};
}  // namespace

std::optional<DType> dtype_from_ggml_type(uint32_t ggml_type) {
  for (const GgmlPair& p : kGgmlPairs)
    if (p.ggml == ggml_type) return p.dtype;
  return std::nullopt;
}

std::optional<GgmlBlockLayout> ggml_block_layout(uint32_t ggml_type) {
  // sizeof(block_*) of ggml-common.h at ggml d99724f (values per block, bytes per block).
  static constexpr struct { uint32_t type; GgmlBlockLayout layout; } kLayouts[] = {
      {9, {32, 36}},   {15, {256, 292}}, {16, {256, 66}},  {17, {256, 74}}, {18, {256, 98}},
      {19, {256, 50}}, {21, {256, 110}}, {22, {256, 82}},  {29, {256, 56}}, {34, {256, 54}},
      {35, {256, 66}}, {39, {32, 17}},   {40, {64, 36}},   {41, {128, 18}}, {42, {64, 18}},
  };
  if (const auto d = dtype_from_ggml_type(ggml_type))
    return GgmlBlockLayout{dtype_info(*d).block, dtype_info(*d).block_bytes};
  for (const auto& l : kLayouts)
    if (l.type == ggml_type) return l.layout;
  return std::nullopt;
}

std::optional<uint32_t> ggml_type_from_dtype(DType t) {
  for (const GgmlPair& p : kGgmlPairs)
    if (p.dtype == t) return p.ggml;
  return std::nullopt;
}

// ---- GGUFFile getters -----------------------------------------------------------------

const GGUFKeyValue* GGUFFile::find(std::string_view key) const {
  for (const GGUFKeyValue& kv : kvs)
    if (kv.key == key) return &kv;
  return nullptr;
}

const Tensor* GGUFFile::find_tensor(std::string_view name) const {
  for (const Tensor& t : tensors)
    if (t.name() == name) return &t;
  return nullptr;
}

static std::string_view article(std::string_view type_name) {
  return type_name.starts_with("INT") || type_name == "ARRAY" ? "an" : "a";
}

static std::string describe(const GGUFValue& v) {
  if (const GGUFArray* a = v.as_array()) {
    const std::string_view et = gguf_type_name(a->element_type());
    return "an array of " + std::string(et);
  }
  const std::string_view t = gguf_type_name(v.type());
  return std::string(article(t)) + " " + std::string(t);
}

namespace {

const GGUFKeyValue& require(const GGUFFile& f, std::string_view key) {
  const GGUFKeyValue* kv = f.find(key);
  if (!kv) throw Error(f.path, "key '" + std::string(key) + "' is missing");
  return *kv;
}

[[noreturn]] void wrong_type(const GGUFFile& f, const GGUFKeyValue& kv, std::string_view want) {
  throw Error(f.path, "key '" + kv.key + "' is " + describe(kv.value) + ", expected " +
                          std::string(want), kv.offset);
}

uint64_t to_u64(const GGUFFile& f, const GGUFKeyValue& kv) {
  if (!gguf_type_is_integer(kv.value.type())) wrong_type(f, kv, "an integer");
  const auto u = kv.value.as_u64();
  if (!u) throw Error(f.path, "key '" + kv.key + "' is negative, expected a count", kv.offset);
  return *u;
}

int64_t to_i64(const GGUFFile& f, const GGUFKeyValue& kv) {
  if (!gguf_type_is_integer(kv.value.type())) wrong_type(f, kv, "an integer");
  const auto i = kv.value.as_i64();
  if (!i)
    throw Error(f.path, "key '" + kv.key + "' does not fit a signed 64-bit integer", kv.offset);
  return *i;
}

double to_f64(const GGUFFile& f, const GGUFKeyValue& kv) {
  const auto d = kv.value.as_f64();
  if (!d) wrong_type(f, kv, "a number");
  return *d;
}

bool to_bool(const GGUFFile& f, const GGUFKeyValue& kv) {
  const bool* b = std::get_if<bool>(&kv.value.v);
  if (!b) wrong_type(f, kv, "a BOOL");
  return *b;
}

const std::string& to_string(const GGUFFile& f, const GGUFKeyValue& kv) {
  const std::string* s = kv.value.as_string();
  if (!s) wrong_type(f, kv, "a STRING");
  return *s;
}

}  // namespace

const std::string& GGUFFile::get_string(std::string_view key) const {
  return to_string(*this, require(*this, key));
}
std::string GGUFFile::get_string(std::string_view key, const std::string& fallback) const {
  const GGUFKeyValue* kv = find(key);
  return kv ? to_string(*this, *kv) : fallback;
}
uint64_t GGUFFile::get_u64(std::string_view key) const {
  return to_u64(*this, require(*this, key));
}
uint64_t GGUFFile::get_u64(std::string_view key, uint64_t fallback) const {
  const GGUFKeyValue* kv = find(key);
  return kv ? to_u64(*this, *kv) : fallback;
}
int64_t GGUFFile::get_i64(std::string_view key) const { return to_i64(*this, require(*this, key)); }
int64_t GGUFFile::get_i64(std::string_view key, int64_t fallback) const {
  const GGUFKeyValue* kv = find(key);
  return kv ? to_i64(*this, *kv) : fallback;
}
double GGUFFile::get_f64(std::string_view key) const { return to_f64(*this, require(*this, key)); }
double GGUFFile::get_f64(std::string_view key, double fallback) const {
  const GGUFKeyValue* kv = find(key);
  return kv ? to_f64(*this, *kv) : fallback;
}
bool GGUFFile::get_bool(std::string_view key) const { return to_bool(*this, require(*this, key)); }
bool GGUFFile::get_bool(std::string_view key, bool fallback) const {
  const GGUFKeyValue* kv = find(key);
  return kv ? to_bool(*this, *kv) : fallback;
}

const GGUFArray& GGUFFile::get_array(std::string_view key) const {
  const GGUFKeyValue& kv = require(*this, key);
  const GGUFArray* a = kv.value.as_array();
  if (!a) wrong_type(*this, kv, "an ARRAY");
  return *a;
}

const std::vector<std::string>& GGUFFile::get_string_array(std::string_view key) const {
  const GGUFKeyValue& kv = require(*this, key);
  const GGUFArray* a = kv.value.as_array();
  if (!a || a->element_type() != GGUFType::STRING) wrong_type(*this, kv, "an array of STRING");
  return std::get<std::vector<std::string>>(a->items);
}

std::vector<float> GGUFFile::get_float_array(std::string_view key) const {
  const GGUFKeyValue& kv = require(*this, key);
  const GGUFArray* a = kv.value.as_array();
  std::vector<float> out;
  bool ok = a != nullptr;
  if (ok) {
    std::visit(
        [&](const auto& items) {
          using T = typename std::decay_t<decltype(items)>::value_type;
          if constexpr (kIsInteger<T> || std::is_floating_point_v<T>)
            out.assign(items.begin(), items.end());
          else
            ok = false;
        },
        a->items);
  }
  if (!ok) wrong_type(*this, kv, "an array of numbers");
  return out;
}

std::vector<int64_t> GGUFFile::get_int_array(std::string_view key) const {
  const GGUFKeyValue& kv = require(*this, key);
  const GGUFArray* a = kv.value.as_array();
  std::vector<int64_t> out;
  bool ok = a != nullptr, fits = true;
  if (ok) {
    std::visit(
        [&](const auto& items) {
          using T = typename std::decay_t<decltype(items)>::value_type;
          if constexpr (kIsInteger<T>) {
            out.reserve(items.size());
            for (const T& x : items) {
              if constexpr (std::is_same_v<T, uint64_t>)
                if (x > uint64_t(std::numeric_limits<int64_t>::max())) fits = false;
              out.push_back(int64_t(x));
            }
          } else {
            ok = false;
          }
        },
        a->items);
  }
  if (!ok) wrong_type(*this, kv, "an array of integers");
  if (!fits)
    throw Error(path, "key '" + kv.key + "' holds a value past the signed 64-bit range", kv.offset);
  return out;
}

}  // namespace mcw
