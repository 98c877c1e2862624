#include "engine/export/packed_safetensors.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/compress/nm_pattern.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/io/json_text.h"
#include "engine/io/safetensors.h"

namespace mcw {

namespace {

using Json = nlohmann::ordered_json;

std::string layer_label(const std::string& name) { return "layer '" + printable(name) + "'"; }

[[noreturn]] void fail(const std::string& file, const std::string& layer, const std::string& what) {
  throw Error(file, layer_label(layer) + ": " + what);
}

uint64_t code_bytes(int64_t n, int bits) { return (uint64_t(n) * uint64_t(bits) + 7) / 8; }
uint64_t mask_bytes(int64_t n) { return (uint64_t(n) + 7) / 8; }

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// Groups as the reader can know them before trusting g_idx: cols / group_size without
// act-order, else max(g_idx) + 1 (what CompressedTensor::groups() computes).
int64_t group_count(const CompressedTensor& t) {
  if (t.g_idx.empty()) return t.cols / t.group_size;
  int32_t mx = 0;
  for (int32_t g : t.g_idx) mx = std::max(mx, g);
  return int64_t(mx) + 1;
}

void validate_grouped(const CompressedTensor& t, const std::string& file, int64_t n) {
  const std::string& L = t.name;
  if (t.bits < 1 || t.bits > 8)
    fail(file, L, "bits " + std::to_string(t.bits) + " is outside 1..8");
  if (t.group_size < 1 || t.group_size > t.cols || t.cols % t.group_size != 0)
    fail(file, L,
         "group_size " + std::to_string(t.group_size) + " does not divide the " +
             std::to_string(t.cols) + " columns");
  if (t.codes.size() != code_bytes(n, t.bits))
    fail(file, L,
         "codes hold " + std::to_string(t.codes.size()) + " bytes, expected " +
             std::to_string(code_bytes(n, t.bits)) + " for " + std::to_string(n) + " " +
             std::to_string(t.bits) + "-bit codes");
  if (!t.g_idx.empty()) {
    if (t.g_idx.size() != size_t(t.cols))
      fail(file, L,
           "g_idx holds " + std::to_string(t.g_idx.size()) + " entries, expected " +
               std::to_string(t.cols));
    const int64_t limit = t.cols / t.group_size;
    for (size_t c = 0; c < t.g_idx.size(); ++c)
      if (t.g_idx[c] < 0 || t.g_idx[c] >= limit)
        fail(file, L,
             "g_idx[" + std::to_string(c) + "] = " + std::to_string(t.g_idx[c]) +
                 " is outside [0, " + std::to_string(limit) + ")");
  }
  const uint64_t cells = uint64_t(t.rows) * uint64_t(group_count(t));
  if (t.coding == WeightCoding::Affine) {
    if (t.scales.size() != cells)
      fail(file, L,
           "scales hold " + std::to_string(t.scales.size()) +
               " values, expected rows*groups = " + std::to_string(cells));
    if (!all_finite(t.scales)) fail(file, L, "scales hold a value that is not finite");
    const uint64_t zeros = t.symmetric ? 0 : cells;
    if (t.zeros.size() != zeros)
      fail(file, L,
           "zeros hold " + std::to_string(t.zeros.size()) + " values, expected " +
               std::to_string(zeros) + (t.symmetric ? " (symmetric)" : ""));
    if (!all_finite(t.zeros)) fail(file, L, "zeros hold a value that is not finite");
    if (!t.codebook.empty()) fail(file, L, "an affine layer has a codebook");
  } else {
    const uint64_t entries = cells << t.bits;
    if (t.codebook.size() != entries)
      fail(file, L,
           "codebook holds " + std::to_string(t.codebook.size()) +
               " values, expected rows*groups*2^bits = " + std::to_string(entries));
    if (!all_finite(t.codebook)) fail(file, L, "codebook holds a value that is not finite");
    if (!t.scales.empty() || !t.zeros.empty())
      fail(file, L, "a codebook layer has scales or zeros");
  }
}

void validate_mask(const CompressedTensor& t, const std::string& file, int64_t n) {
  const std::string& L = t.name;
  if (t.nm_n < 0 || t.nm_m < 0 || (t.nm_m == 0) != (t.nm_n == 0) || t.nm_n > t.nm_m || t.nm_m > 64)
    fail(file, L,
         "N:M pattern " + std::to_string(t.nm_n) + ":" + std::to_string(t.nm_m) +
             " is not 0:0 or 1 <= N <= M <= 64");
  if (t.mask.empty()) {
    if (t.nm_m > 0) fail(file, L, "an N:M pattern needs a mask");
    return;
  }
  if (t.mask.size() != mask_bytes(n))
    fail(file, L,
         "mask holds " + std::to_string(t.mask.size()) + " bytes, expected " +
             std::to_string(mask_bytes(n)));
  if (n % 8 != 0 && (t.mask.back() >> (n % 8)) != 0)
    fail(file, L, "mask sets bits past the last weight");
  if (t.nm_m > 0 && !mask_satisfies_nm(t.mask, t.rows, t.cols, t.nm_n, t.nm_m))
    fail(file, L,
         "mask does not keep exactly " + std::to_string(t.nm_n) + " of every " +
             std::to_string(t.nm_m) + " weights in a row");
}

// Metadata integers: present, integral, within [lo, hi].
int64_t meta_int(const Json& layer, const char* key, int64_t lo, int64_t hi,
                 const std::string& file, const std::string& name) {
  auto it = layer.find(key);
  if (it == layer.end() || !it->is_number_integer())
    fail(file, name, std::string("scheme '") + key + "' is missing or not an integer");
  const bool neg = it->is_number_integer() && !it->is_number_unsigned();
  const int64_t v = neg ? it->get<int64_t>()
                        : int64_t(std::min<uint64_t>(
                              it->get<uint64_t>(), uint64_t(std::numeric_limits<int64_t>::max())));
  if (v < lo || v > hi)
    fail(file, name,
         std::string("scheme '") + key + "' = " + it->dump() + " is outside [" +
             std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

WeightCoding parse_coding(const Json& layer, const std::string& file, const std::string& name) {
  auto it = layer.find("coding");
  if (it == layer.end() || !it->is_string()) fail(file, name, "scheme 'coding' is missing");
  const std::string& s = it->get_ref<const std::string&>();
  for (WeightCoding c :
       {WeightCoding::Dense, WeightCoding::Affine, WeightCoding::Codebook, WeightCoding::LowRank})
    if (s == coding_name(c)) return c;
  fail(file, name, "unknown coding '" + printable(s) + "'");
}

// The parts a layer of each coding may have; a tensor that is no part of any layer is an
// error (a writer's mistake, or a part this version does not understand).
std::vector<const char*> parts_of(WeightCoding coding) {
  std::vector<const char*> p;
  switch (coding) {
    case WeightCoding::Dense:
      p = {"dense"};
      break;
    case WeightCoding::Affine:
      p = {"codes", "g_idx", "scales", "zeros"};
      break;
    case WeightCoding::Codebook:
      p = {"codes", "g_idx", "codebook"};
      break;
    case WeightCoding::LowRank:
      p = {"lr_a", "lr_b"};
      break;
  }
  for (const char* common : {"mask", "outlier_index", "outlier_value", "input_scale"})
    p.push_back(common);
  return p;
}

// Each part of the file, found by name.
class Parts {
 public:
  Parts(const std::map<std::string, const Tensor*>& by_name, const std::string& file)
      : file_(file), by_name_(by_name) {}

  const Tensor* find(const std::string& layer, const char* part) const {
    auto it = by_name_.find(layer + "." + part);
    return it == by_name_.end() ? nullptr : it->second;
  }

  const Tensor& need(const std::string& layer, const char* part) const {
    const Tensor* t = find(layer, part);
    if (!t) fail(file_, layer, std::string("part '") + part + "' is missing");
    return *t;
  }

  // `allowed` dtypes and exactly `shape`.
  void check(const std::string& layer, const char* part, const Tensor& t,
             std::initializer_list<DType> allowed, const Shape& shape) const {
    bool ok = false;
    for (DType d : allowed) ok = ok || t.dtype() == d;
    std::string names;
    for (DType d : allowed) names += (names.empty() ? "" : " or ") + std::string(dtype_name(d));
    if (!ok)
      fail(file_, layer,
           std::string(part) + " is " + std::string(dtype_name(t.dtype())) + ", expected " + names);
    if (t.shape() != shape)
      fail(file_, layer,
           std::string(part) + " has shape " + shape_string(t.shape()) + ", expected " +
               shape_string(shape));
  }

 private:
  const std::string& file_;
  const std::map<std::string, const Tensor*>& by_name_;
};

template <class T>
std::vector<T> raw_values(const Tensor& t) {
  std::vector<T> v(t.nbytes() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), t.data(), v.size() * sizeof(T));
  return v;
}

// F16 when that is exact for every value, else F32 (see the header).
Tensor float_part(const float* v, size_t n, Shape shape, std::string name) {
  std::vector<uint16_t> h(n);
  bool exact = true;
  for (size_t i = 0; i < n && exact; ++i) {
    h[i] = f32_to_f16(v[i]);
    exact = std::bit_cast<uint32_t>(f16_to_f32(h[i])) == std::bit_cast<uint32_t>(v[i]);
  }
  if (!exact)
    return Tensor::from_f32(std::span<const float>(v, n), std::move(shape), std::move(name));
  Tensor t = Tensor::zeros(DType::F16, std::move(shape), std::move(name));
  if (n) std::memcpy(t.mutable_data(), h.data(), n * sizeof(uint16_t));
  return t;
}

template <class T>
Tensor raw_part(DType dtype, const std::vector<T>& v, std::string name) {
  Tensor t = Tensor::zeros(dtype, {int64_t(v.size())}, std::move(name));
  if (!v.empty()) std::memcpy(t.mutable_data(), v.data(), v.size() * sizeof(T));
  return t;
}

Json scheme_json(const CompressedTensor& t) {
  Json j = Json::object();
  j["name"] = t.name;
  j["coding"] = std::string(coding_name(t.coding));
  j["rows"] = t.rows, j["cols"] = t.cols;
  j["bits"] = t.bits, j["group_size"] = t.group_size, j["symmetric"] = t.symmetric;
  j["nm_n"] = t.nm_n, j["nm_m"] = t.nm_m, j["rank"] = t.rank;
  j["description"] = t.describe();
  return j;
}

// A layer's scheme from its metadata entry, without its parts.
CompressedTensor parse_scheme(const Json& j, const std::string& file, size_t index) {
  if (!j.is_object())
    throw Error(file, std::string(kPackedMetadataKey) + " layer " + std::to_string(index) +
                          " is not a JSON object");
  auto name_it = j.find("name");
  if (name_it == j.end() || !name_it->is_string() || name_it->get_ref<const std::string&>().empty())
    throw Error(
        file, std::string(kPackedMetadataKey) + " layer " + std::to_string(index) + " has no name");
  CompressedTensor t;
  t.name = name_it->get<std::string>();
  const std::string& L = t.name;
  t.coding = parse_coding(j, file, L);
  t.rows = meta_int(j, "rows", 1, kMaxPackedWeights, file, L);
  t.cols = meta_int(j, "cols", 1, kMaxPackedWeights, file, L);
  if (t.rows > kMaxPackedWeights / t.cols)
    fail(file, L, "rows*cols exceeds " + std::to_string(kMaxPackedWeights) + " weights");
  t.bits = int(meta_int(j, "bits", 0, 8, file, L));
  t.group_size = meta_int(j, "group_size", 0, t.cols, file, L);
  t.nm_n = int(meta_int(j, "nm_n", 0, 64, file, L));
  t.nm_m = int(meta_int(j, "nm_m", 0, 64, file, L));
  t.rank = meta_int(j, "rank", 0, std::min(t.rows, t.cols), file, L);
  auto sym = j.find("symmetric");
  if (sym == j.end() || !sym->is_boolean()) fail(file, L, "scheme 'symmetric' is not a boolean");
  t.symmetric = sym->get<bool>();
  return t;
}

// Fills `t`'s parts from the file and validates the whole layer.
void read_parts(CompressedTensor& t, const Parts& parts, const std::string& file) {
  const std::string& L = t.name;
  const int64_t n = t.rows * t.cols;
  const auto floats = {DType::F16, DType::F32};

  switch (t.coding) {
    case WeightCoding::Dense: {
      const Tensor& d = parts.need(L, "dense");
      parts.check(L, "dense", d, floats, {t.rows, t.cols});
      t.dense = Tensor::from_f32(d.to_f32(), {t.rows, t.cols}, L);
      break;
    }
    case WeightCoding::Affine:
    case WeightCoding::Codebook: {
      if (t.bits < 1) fail(file, L, "bits 0 is outside 1..8");
      if (t.group_size < 1 || t.cols % t.group_size != 0)
        fail(file, L,
             "group_size " + std::to_string(t.group_size) + " does not divide the " +
                 std::to_string(t.cols) + " columns");
      const Tensor& codes = parts.need(L, "codes");
      parts.check(L, "codes", codes, {DType::U8}, {int64_t(code_bytes(n, t.bits))});
      t.codes = raw_values<uint8_t>(codes);
      if (const Tensor* g = parts.find(L, "g_idx")) {
        parts.check(L, "g_idx", *g, {DType::I32}, {t.cols});
        t.g_idx = raw_values<int32_t>(*g);
        // Range first: the group count below is only meaningful for indices in range.
        for (size_t c = 0; c < t.g_idx.size(); ++c)
          if (t.g_idx[c] < 0 || t.g_idx[c] >= t.cols / t.group_size)
            fail(file, L,
                 "g_idx[" + std::to_string(c) + "] = " + std::to_string(t.g_idx[c]) +
                     " is outside [0, " + std::to_string(t.cols / t.group_size) + ")");
      }
      const int64_t groups = group_count(t);
      if (t.coding == WeightCoding::Affine) {
        const Tensor& s = parts.need(L, "scales");
        parts.check(L, "scales", s, floats, {t.rows, groups});
        t.scales = s.to_f32();
        if (const Tensor* z = parts.find(L, "zeros")) {
          if (t.symmetric) fail(file, L, "a symmetric layer has zeros");
          parts.check(L, "zeros", *z, floats, {t.rows, groups});
          t.zeros = z->to_f32();
        } else if (!t.symmetric) {
          fail(file, L, "part 'zeros' is missing (asymmetric)");
        }
      } else {
        const Tensor& cb = parts.need(L, "codebook");
        parts.check(L, "codebook", cb, floats, {t.rows, groups, int64_t(1) << t.bits});
        t.codebook = cb.to_f32();
      }
      break;
    }
    case WeightCoding::LowRank: {
      if (t.rank < 1) fail(file, L, "low rank needs rank >= 1");
      const Tensor& a = parts.need(L, "lr_a");
      const Tensor& b = parts.need(L, "lr_b");
      parts.check(L, "lr_a", a, floats, {t.rows, t.rank});
      parts.check(L, "lr_b", b, floats, {t.rank, t.cols});
      t.lr_a = Tensor::from_f32(a.to_f32(), {t.rows, t.rank}, L);
      t.lr_b = Tensor::from_f32(b.to_f32(), {t.rank, t.cols}, L);
      break;
    }
  }
  if (const Tensor* m = parts.find(L, "mask")) {
    parts.check(L, "mask", *m, {DType::U8}, {int64_t(mask_bytes(n))});
    t.mask = raw_values<uint8_t>(*m);
  }
  const Tensor* oi = parts.find(L, "outlier_index");
  const Tensor* ov = parts.find(L, "outlier_value");
  if ((oi == nullptr) != (ov == nullptr))
    fail(file, L, "outlier_index and outlier_value must come together");
  if (oi) {
    if (oi->ndim() != 1) fail(file, L, "outlier_index has shape " + shape_string(oi->shape()));
    parts.check(L, "outlier_index", *oi, {DType::U32}, {oi->dim(0)});
    parts.check(L, "outlier_value", *ov, {DType::F16}, {oi->dim(0)});
    t.outlier_index = raw_values<uint32_t>(*oi);
    t.outlier_value = raw_values<uint16_t>(*ov);
  }
  if (const Tensor* s = parts.find(L, "input_scale")) {
    parts.check(L, "input_scale", *s, floats, {t.cols});
    t.input_scale = s->to_f32();
  }
  validate_compressed_tensor(t, file);
}

}  // namespace

std::string_view coding_name(WeightCoding coding) {
  switch (coding) {
    case WeightCoding::Dense:
      return "dense";
    case WeightCoding::Affine:
      return "affine";
    case WeightCoding::Codebook:
      return "codebook";
    case WeightCoding::LowRank:
      return "low_rank";
  }
  return "unknown";
}

std::string find_packed_beside(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(model_path);
  const fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  const fs::path packed = (dir.empty() ? fs::path(".") : dir) / kPackedFileName;
  return fs::is_regular_file(packed, ec) ? packed.string() : std::string();
}

void validate_compressed_tensor(const CompressedTensor& t, const std::string& file) {
  const std::string& L = t.name;
  if (t.rows < 1 || t.cols < 1 || t.rows > kMaxPackedWeights / t.cols)
    fail(file, L,
         "shape [" + std::to_string(t.rows) + ", " + std::to_string(t.cols) +
             "] is empty or holds more than " + std::to_string(kMaxPackedWeights) + " weights");
  const int64_t n = t.rows * t.cols;
  switch (t.coding) {
    case WeightCoding::Dense:
      if (t.dense.dtype() != DType::F32 || t.dense.numel() != n)
        fail(file, L, "dense values are not f32 [rows, cols]");
      break;
    case WeightCoding::Affine:
    case WeightCoding::Codebook:
      validate_grouped(t, file, n);
      break;
    case WeightCoding::LowRank:
      if (t.rank < 1 || t.rank > std::min(t.rows, t.cols))
        fail(file, L, "rank " + std::to_string(t.rank) + " is outside [1, min(rows, cols)]");
      if (t.lr_a.dtype() != DType::F32 || t.lr_a.shape() != Shape{t.rows, t.rank} ||
          t.lr_b.dtype() != DType::F32 || t.lr_b.shape() != Shape{t.rank, t.cols})
        fail(file, L, "low-rank factors are not f32 [rows, rank] and [rank, cols]");
      break;
  }
  validate_mask(t, file, n);
  if (t.outlier_index.size() != t.outlier_value.size())
    fail(file, L, "outlier_index and outlier_value differ in length");
  for (size_t k = 0; k < t.outlier_index.size(); ++k)
    if (int64_t(t.outlier_index[k]) >= n)
      fail(file, L,
           "outlier_index[" + std::to_string(k) + "] = " + std::to_string(t.outlier_index[k]) +
               " is outside the " + std::to_string(n) + " weights");
  if (!t.input_scale.empty()) {
    if (t.input_scale.size() != size_t(t.cols))
      fail(file, L,
           "input_scale holds " + std::to_string(t.input_scale.size()) + " values, expected " +
               std::to_string(t.cols) + " (cols)");
    for (size_t c = 0; c < t.input_scale.size(); ++c)
      if (!std::isfinite(t.input_scale[c]) || t.input_scale[c] == 0.0f)
        fail(file, L,
             "input_scale[" + std::to_string(c) + "] = " + std::to_string(t.input_scale[c]) +
                 " is not a finite non-zero number");
  }
}

void write_packed_safetensors(const std::string& path,
                              const std::vector<CompressedTensor>& layers) {
  std::vector<const CompressedTensor*> ptrs;
  for (const CompressedTensor& t : layers) ptrs.push_back(&t);
  write_packed_safetensors(path, ptrs);
}

void write_packed_safetensors(const std::string& path,
                              const std::vector<const CompressedTensor*>& layers) {
  std::vector<Tensor> parts;
  Json list = Json::array();
  std::set<std::string> names;
  for (const CompressedTensor* layer : layers) {
    const CompressedTensor& t = *layer;
    validate_compressed_tensor(t, path);
    if (t.name.empty() || !names.insert(t.name).second)
      fail(path, t.name, "name is empty or used twice");
    list.push_back(scheme_json(t));
    const std::string& L = t.name;
    const int64_t groups = (t.coding == WeightCoding::Affine || t.coding == WeightCoding::Codebook)
                               ? group_count(t)
                               : 0;
    switch (t.coding) {
      case WeightCoding::Dense: {
        const std::vector<float> v = t.dense.to_f32();
        parts.push_back(float_part(v.data(), v.size(), {t.rows, t.cols}, L + ".dense"));
        break;
      }
      case WeightCoding::Affine:
      case WeightCoding::Codebook:
        parts.push_back(raw_part(DType::U8, t.codes, L + ".codes"));
        if (t.coding == WeightCoding::Affine) {
          parts.push_back(
              float_part(t.scales.data(), t.scales.size(), {t.rows, groups}, L + ".scales"));
          if (!t.symmetric)
            parts.push_back(
                float_part(t.zeros.data(), t.zeros.size(), {t.rows, groups}, L + ".zeros"));
        } else {
          parts.push_back(float_part(t.codebook.data(), t.codebook.size(),
                                     {t.rows, groups, int64_t(1) << t.bits}, L + ".codebook"));
        }
        if (!t.g_idx.empty()) parts.push_back(raw_part(DType::I32, t.g_idx, L + ".g_idx"));
        break;
      case WeightCoding::LowRank:
        parts.push_back(
            float_part(t.lr_a.as<float>(), size_t(t.rows * t.rank), {t.rows, t.rank}, L + ".lr_a"));
        parts.push_back(
            float_part(t.lr_b.as<float>(), size_t(t.rank * t.cols), {t.rank, t.cols}, L + ".lr_b"));
        break;
    }
    if (!t.mask.empty()) parts.push_back(raw_part(DType::U8, t.mask, L + ".mask"));
    if (!t.outlier_index.empty()) {
      parts.push_back(raw_part(DType::U32, t.outlier_index, L + ".outlier_index"));
      parts.push_back(raw_part(DType::F16, t.outlier_value, L + ".outlier_value"));
    }
    if (!t.input_scale.empty())
      parts.push_back(
          float_part(t.input_scale.data(), t.input_scale.size(), {t.cols}, L + ".input_scale"));
  }
  Json meta = Json::object();
  meta["version"] = kPackedFormatVersion;
  meta["layers"] = std::move(list);
  write_safetensors(path, parts, {{kPackedMetadataKey, meta.dump()}});
}

PackedSafetensorsReader::PackedSafetensorsReader(const std::string& path)
    : path_(path), file_(read_safetensors(path)) {
  auto it = file_.metadata.find(kPackedMetadataKey);
  if (it == file_.metadata.end())
    throw Error(path,
                std::string("no '") + kPackedMetadataKey + "' metadata: not a packed MCW export");
  JsonTextOptions options;
  options.max_depth = 4;  // {layers: [{...}]}
  options.reject_duplicate_keys = true;
  options.what = std::string("the '") + kPackedMetadataKey + "' metadata";
  Json meta;
  try {
    meta = parse_json_text(it->second, path, 0, options);
  } catch (const Error& e) {
    // Offsets into an escaped metadata string say nothing about the file's bytes.
    throw Error(path, e.message());
  }
  if (!meta.is_object())
    throw Error(path,
                std::string("the '") + kPackedMetadataKey + "' metadata is not a JSON object");
  auto version = meta.find("version");
  if (version == meta.end() || !version->is_number_integer() ||
      version->get<int64_t>() != kPackedFormatVersion)
    throw Error(path, std::string("the '") + kPackedMetadataKey + "' metadata has version " +
                          (version == meta.end() ? "none" : version->dump()) + ", expected " +
                          std::to_string(kPackedFormatVersion));
  auto layers = meta.find("layers");
  if (layers == meta.end() || !layers->is_array())
    throw Error(path, std::string("the '") + kPackedMetadataKey + "' metadata has no layer list");

  for (const Tensor& t : file_.tensors) by_name_[t.name()] = &t;
  schemes_.reserve(layers->size());  // bounded by the header's length
  std::set<std::string> names, claimed;
  for (size_t i = 0; i < layers->size(); ++i) {
    schemes_.push_back(parse_scheme((*layers)[i], path, i));
    const std::string& L = schemes_.back().name;
    if (!names.insert(L).second) fail(path, L, "appears twice in the layer list");
    for (const char* part : parts_of(schemes_.back().coding))
      if (by_name_.count(L + "." + part)) claimed.insert(L + "." + part);
  }
  for (const auto& [name, t] : by_name_)
    if (!claimed.count(name))
      throw Error(path,
                  "tensor '" + printable(name) + "' belongs to no layer of " + kPackedMetadataKey);
}

CompressedTensor PackedSafetensorsReader::read(size_t i) const {
  CompressedTensor t = schemes_.at(i);
  read_parts(t, Parts(by_name_, path_), path_);
  return t;
}

std::vector<CompressedTensor> read_packed_safetensors(const std::string& path) {
  const PackedSafetensorsReader reader(path);
  std::vector<CompressedTensor> out;
  out.reserve(reader.size());
  for (size_t i = 0; i < reader.size(); ++i) out.push_back(reader.read(i));
  return out;
}

}  // namespace mcw
