#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "engine/compress/awq.h"
#include "engine/compress/gptq.h"
#include "engine/compress/kmeans.h"
#include "engine/compress/low_rank.h"
#include "engine/compress/magnitude.h"
#include "engine/compress/outliers.h"
#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/safetensors.h"
#include "quant_test_util.h"
#include "temp_files.h"

using namespace mcw;
using namespace quant_test;
using Json = nlohmann::json;

namespace {

constexpr int64_t kRows = 16, kCols = 64;

CompressedTensor rtn(const std::vector<float>& w, int bits, bool sym, QuantScope scope, int64_t gs,
                     const std::string& name) {
  RtnOptions o;
  o.bits = bits, o.symmetric = sym, o.scope = scope, o.group_size = gs;
  return quantize_rtn(w.data(), kRows, kCols, o, nullptr, nullptr, name);
}

Tensor weight(int64_t rows, int64_t cols, uint32_t seed, const std::string& name) {
  return Tensor::from_f32(gaussian(size_t(rows * cols), seed, 0.05f), {rows, cols}, name);
}

// Every layer kind the engine's algorithms make, each under its own name.
std::vector<CompressedTensor> all_kinds() {
  const auto w = laplace(size_t(kRows * kCols), 7, 0.02f);
  std::vector<CompressedTensor> v;
  v.push_back(rtn(w, 4, true, QuantScope::Group, 32, "rtn.sym.g32"));
  v.push_back(rtn(w, 3, false, QuantScope::Group, 16, "rtn.asym.g16"));
  v.push_back(rtn(w, 8, false, QuantScope::PerChannel, 0, "rtn.asym.channel"));
  v.push_back(rtn(w, 2, true, QuantScope::PerChannel, 0, "rtn.sym.channel"));

  const auto x = correlated_inputs(96, kCols, 3, 2);
  const LayerStats st = stats_of(x, 96, kCols);
  GptqOptions g;
  g.bits = 4, g.group_size = 16, g.act_order = true;
  v.push_back(quantize_gptq(w.data(), kRows, kCols, st, g, nullptr, "gptq.act_order"));

  KmeansOptions k;
  k.bits = 3, k.group_size = 32;
  v.push_back(quantize_kmeans(w.data(), kRows, kCols, k, nullptr, nullptr, "kmeans.g32"));

  LowRankOptions lr;
  lr.rank = 5;
  v.push_back(low_rank(weight(kRows, kCols, 11, "svd.r5"), lr));
  // 7 x 20: a mask whose last byte is partly padding.
  v.push_back(magnitude_prune(weight(7, 20, 12, "magnitude.50"), {{0.5, 0, 0}}));
  v.push_back(magnitude_prune(weight(kRows, kCols, 13, "magnitude.2of4"), {{0.5, 2, 4}}));

  CompressedTensor with_outliers = rtn(w, 3, false, QuantScope::Group, 32, "rtn.outliers");
  std::vector<double> hd(kCols, 1.0);
  add_outliers(with_outliers, w.data(), hd.data(), {0.02, true});
  v.push_back(with_outliers);

  // A 2:4 mask on top of affine codes, as a deployment would combine them.
  CompressedTensor sparse_q = rtn(w, 4, false, QuantScope::Group, 32, "rtn.2of4");
  sparse_q.mask = v[8].mask, sparse_q.nm_n = 2, sparse_q.nm_m = 4;
  v.push_back(sparse_q);
  return v;
}

std::string write_all(const std::vector<CompressedTensor>& layers) {
  const std::string path = (test::fresh_temp_dir() / kPackedFileName).string();
  write_packed_safetensors(path, layers);
  return path;
}

std::vector<uint8_t> bytes_of(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.data());
  return std::vector<uint8_t>(p, p + t.nbytes());
}

// The raw file as tensors (owned copies) and the scheme JSON, to be tampered with.
struct RawFile {
  std::vector<Tensor> tensors;
  Json meta;
};

RawFile load_raw(const std::string& path) {
  const SafetensorsFile f = read_safetensors(path);
  RawFile r;
  for (const Tensor& t : f.tensors) {
    Tensor c = Tensor::zeros(t.dtype(), t.shape(), t.name());
    if (t.nbytes()) std::memcpy(c.mutable_data(), t.data(), t.nbytes());
    r.tensors.push_back(std::move(c));
  }
  r.meta = Json::parse(f.metadata.at(kPackedMetadataKey));
  return r;
}

Tensor& part(RawFile& r, const std::string& name) {
  for (Tensor& t : r.tensors)
    if (t.name() == name) return t;
  ADD_FAILURE() << "no part " << name;
  return r.tensors.front();
}

// Writes `layers`, lets `tamper` change the raw file, and returns read_packed's error.
std::string error_after(const std::vector<CompressedTensor>& layers,
                        const std::function<void(RawFile&)>& tamper,
                        const std::string* meta_text = nullptr) {
  const std::string path = write_all(layers);
  RawFile r = load_raw(path);
  tamper(r);
  write_safetensors(path, r.tensors,
                    {{kPackedMetadataKey, meta_text ? *meta_text : r.meta.dump()}});
  try {
    read_packed_safetensors(path);
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_EQ(what.rfind(path, 0), 0u) << what;
    return what;
  }
  ADD_FAILURE() << "no error";
  return {};
}

std::vector<CompressedTensor> one(const std::string& name) {
  for (CompressedTensor& t : all_kinds())
    if (t.name == name) return {t};
  ADD_FAILURE() << name;
  return {};
}

}  // namespace

TEST(PackedSafetensors, RoundTripOfEveryCodingIsExact) {
  const auto layers = all_kinds();
  // The fixture covers what it claims to.
  ASSERT_FALSE(layers[4].g_idx.empty());
  ASSERT_FALSE(layers[9].outlier_index.empty());
  ASSERT_EQ(layers[6].coding, WeightCoding::LowRank);
  ASSERT_EQ(layers[5].coding, WeightCoding::Codebook);
  ASSERT_EQ(layers[8].nm_m, 4);

  const auto back = read_packed_safetensors(write_all(layers));
  ASSERT_EQ(back.size(), layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const CompressedTensor &a = layers[i], &b = back[i];
    SCOPED_TRACE(a.name);
    EXPECT_EQ(b.name, a.name);
    EXPECT_EQ(b.coding, a.coding);
    EXPECT_EQ(b.rows, a.rows);
    EXPECT_EQ(b.cols, a.cols);
    EXPECT_EQ(b.codes, a.codes);
    EXPECT_EQ(b.scales, a.scales);
    EXPECT_EQ(b.zeros, a.zeros);
    EXPECT_EQ(b.codebook, a.codebook);
    EXPECT_EQ(b.g_idx, a.g_idx);
    EXPECT_EQ(b.mask, a.mask);
    EXPECT_EQ(b.outlier_index, a.outlier_index);
    EXPECT_EQ(b.outlier_value, a.outlier_value);
    EXPECT_EQ(bytes_of(b.dequantize()), bytes_of(a.dequantize()));
    EXPECT_EQ(b.storage_bits(), a.storage_bits());
    EXPECT_EQ(b.describe(), a.describe());
  }
}

TEST(PackedSafetensors, FileLayoutIsTheDocumentedOne) {
  const auto layers = all_kinds();
  const std::string path = write_all(layers);
  const SafetensorsFile f = read_safetensors(path);
  std::map<std::string, const Tensor*> by_name;
  for (const Tensor& t : f.tensors) by_name[t.name()] = &t;

  // rtn.asym.g16: 3-bit codes, 64/16 = 4 groups; quantiser scales are f16 values.
  const CompressedTensor& q = layers[1];
  const Tensor* codes = by_name.at("rtn.asym.g16.codes");
  EXPECT_EQ(codes->dtype(), DType::U8);
  EXPECT_EQ(codes->nbytes(), size_t((kRows * kCols * 3 + 7) / 8));
  EXPECT_EQ(bytes_of(*codes), q.codes);
  const Tensor* scales = by_name.at("rtn.asym.g16.scales");
  EXPECT_EQ(scales->dtype(), DType::F16);
  EXPECT_EQ(scales->shape(), (Shape{kRows, 4}));
  EXPECT_EQ(f16_to_f32(scales->as<uint16_t>()[5]), q.scales[5]);
  EXPECT_TRUE(by_name.count("rtn.asym.g16.zeros"));
  EXPECT_FALSE(by_name.count("rtn.sym.g32.zeros"));  // implied when symmetric
  EXPECT_EQ(by_name.at("gptq.act_order.g_idx")->dtype(), DType::I32);
  EXPECT_EQ(by_name.at("kmeans.g32.codebook")->shape(), (Shape{kRows, 2, 8}));
  EXPECT_EQ(by_name.at("rtn.outliers.outlier_index")->dtype(), DType::U32);
  EXPECT_EQ(by_name.at("magnitude.50.mask")->shape(), (Shape{(7 * 20 + 7) / 8}));
  // Gaussian f32 values are not f16-exact: kept as F32 so that nothing is lost.
  EXPECT_EQ(by_name.at("magnitude.50.dense")->dtype(), DType::F32);
  EXPECT_EQ(by_name.at("svd.r5.lr_a")->shape(), (Shape{kRows, 5}));

  const Json meta = Json::parse(f.metadata.at(kPackedMetadataKey));
  EXPECT_EQ(meta["version"], 1);
  ASSERT_EQ(meta["layers"].size(), layers.size());
  const Json& l = meta["layers"][1];
  EXPECT_EQ(l["name"], "rtn.asym.g16");
  EXPECT_EQ(l["coding"], "affine");
  EXPECT_EQ(l["bits"], 3);
  EXPECT_EQ(l["group_size"], 16);
  EXPECT_EQ(l["symmetric"], false);
  EXPECT_EQ(l["description"], q.describe());
  EXPECT_EQ(meta["layers"][8]["nm_n"], 2);
  EXPECT_EQ(meta["layers"][6]["rank"], 5);
}

TEST(PackedSafetensors, DenseValuesThatAreF16AreStoredAsF16) {
  std::vector<float> v(24);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(int(i) - 12) * 0.25f;
  const auto layer = dense_tensor(Tensor::from_f32(v, {4, 6}, "d"), "d");
  const std::string path = write_all({layer});
  EXPECT_EQ(read_safetensors(path).tensors.at(0).dtype(), DType::F16);
  EXPECT_EQ(read_packed_safetensors(path).at(0).dense.to_f32(), v);
}

TEST(PackedSafetensors, WriterRefusesInconsistentLayers) {
  auto layers = one("rtn.sym.g32");
  layers[0].scales.pop_back();
  EXPECT_THROW(
      write_packed_safetensors((test::fresh_temp_dir() / "p.safetensors").string(), layers), Error);
  auto twice = one("svd.r5");
  twice.push_back(twice[0]);
  EXPECT_THROW(write_packed_safetensors((test::fresh_temp_dir() / "p.safetensors").string(), twice),
               Error);
}

TEST(PackedSafetensors, TruncatedFileIsOneLineError) {
  const std::string path = write_all(all_kinds());
  std::string bytes = test::read_bytes(path);
  for (size_t keep : {bytes.size() - 1, bytes.size() / 2, size_t(12), size_t(3), size_t(0)}) {
    test::write_bytes(path, bytes.substr(0, keep));
    try {
      read_packed_safetensors(path);
      ADD_FAILURE() << "no error at " << keep;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
}

TEST(PackedSafetensors, HostileSchemesAndPartsAreNamed) {
  const auto has = [](const std::string& what, const char* a, const char* b) {
    EXPECT_NE(what.find(a), std::string::npos) << what;
    EXPECT_NE(what.find(b), std::string::npos) << what;
  };
  const auto rtn1 = one("rtn.asym.g16");
  has(error_after(rtn1, [](RawFile& r) { r.meta["layers"][0]["bits"] = 9; }), "rtn.asym.g16",
      "bits");
  has(error_after(rtn1, [](RawFile& r) { r.meta["layers"][0]["coding"] = "zstd"; }), "rtn.asym.g16",
      "unknown coding 'zstd'");
  has(error_after(rtn1, [](RawFile& r) { r.meta["layers"][0]["group_size"] = 24; }), "rtn.asym.g16",
      "group_size 24");
  has(error_after(rtn1,
                  [](RawFile& r) {
                    part(r, "rtn.asym.g16.scales") =
                        Tensor::zeros(DType::F16, {kRows, 5}, "rtn.asym.g16.scales");
                  }),
      "rtn.asym.g16", "scales has shape [16, 5], expected [16, 4]");
  has(error_after(rtn1,
                  [](RawFile& r) {
                    Tensor& c = part(r, "rtn.asym.g16.codes");
                    c = Tensor::zeros(DType::U8, {c.dim(0) - 1}, c.name());
                  }),
      "rtn.asym.g16", "codes");
  has(error_after(rtn1,
                  [](RawFile& r) {
                    std::erase_if(r.tensors,
                                  [](const Tensor& t) { return t.name() == "rtn.asym.g16.zeros"; });
                  }),
      "rtn.asym.g16", "zeros");
  has(error_after(rtn1,
                  [](RawFile& r) {
                    r.tensors.push_back(Tensor::zeros(DType::U8, {3}, "rtn.asym.g16.extra"));
                  }),
      "rtn.asym.g16.extra", "belongs to no layer");
  has(error_after(rtn1,
                  [](RawFile& r) {
                    Tensor& s = part(r, "rtn.asym.g16.scales");
                    s.mutable_as<uint16_t>()[3] = 0x7c00;  // +inf
                  }),
      "rtn.asym.g16", "not finite");

  has(error_after(one("gptq.act_order"),
                  [](RawFile& r) { part(r, "gptq.act_order.g_idx").mutable_as<int32_t>()[7] = 4; }),
      "gptq.act_order", "g_idx[7] = 4 is outside [0, 4)");
  has(error_after(one("rtn.outliers"),
                  [](RawFile& r) {
                    part(r, "rtn.outliers.outlier_index").mutable_as<uint32_t>()[0] = kRows * kCols;
                  }),
      "rtn.outliers", "outlier_index[0] = 1024 is outside");
  has(error_after(one("magnitude.2of4"),
                  [](RawFile& r) { part(r, "magnitude.2of4.mask").mutable_as<uint8_t>()[0] ^= 1; }),
      "magnitude.2of4", "does not keep exactly 2 of every 4");
  has(error_after(
          one("magnitude.50"),
          [](RawFile& r) { part(r, "magnitude.50.mask").mutable_as<uint8_t>()[17] |= 0x80; }),
      "magnitude.50", "past the last weight");
  has(error_after(one("svd.r5"), [](RawFile& r) { r.meta["layers"][0]["rank"] = 6; }), "svd.r5",
      "lr_a has shape [16, 5], expected [16, 6]");
  has(error_after(one("svd.r5"), [](RawFile& r) { r.meta["layers"][0]["rows"] = -3; }), "svd.r5",
      "'rows'");
  has(error_after(one("svd.r5"),
                  [](RawFile& r) {
                    r.meta["layers"][0]["rows"] = int64_t(1) << 31;
                    r.meta["layers"][0]["cols"] = int64_t(1) << 31;
                  }),
      "svd.r5", "exceeds");

  const std::string not_json = "{\"version\": 1, \"layers\": [";
  has(error_after(
          rtn1, [](RawFile&) {}, &not_json),
      "mcw.packed", "not valid JSON");
  const std::string deep = "{\"version\": 1, \"layers\": [[[[[[[]]]]]]]}";
  has(error_after(
          rtn1, [](RawFile&) {}, &deep),
      "mcw.packed", "deeper");
  const std::string v2 = "{\"version\": 2, \"layers\": []}";
  has(error_after(
          rtn1, [](RawFile&) {}, &v2),
      "mcw.packed", "version 2");
}

TEST(PackedSafetensors, PlainSafetensorsIsNotAPackedExport) {
  const std::string path = (test::fresh_temp_dir() / "plain.safetensors").string();
  write_safetensors(path, {Tensor::zeros(DType::F32, {2, 2}, "w")});
  try {
    read_packed_safetensors(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a packed MCW export"), std::string::npos);
  }
}

namespace {

// A real AWQ layer, carrying its input scale as compress_llama records it.
CompressedTensor awq_layer(const std::string& name) {
  const auto w = laplace(size_t(kRows * kCols), 21, 0.02f);
  const auto x = correlated_inputs(96, kCols, 22, 3, 20.0f);
  AwqOptions o;
  o.bits = 4, o.group_size = 32, o.grid = 5;
  AwqResult r = quantize_awq({{w.data(), kRows, name}}, x.data(), 96, kCols, o);
  CompressedTensor t = std::move(r.layers[0]);
  t.input_scale = r.input_scale;
  return t;
}

}  // namespace

TEST(PackedSafetensors, AwqLayerRoundTripsWithItsInputScale) {
  const CompressedTensor t = awq_layer("awq.q");
  ASSERT_EQ(t.input_scale.size(), size_t(kCols));
  bool nontrivial = false;
  for (float s : t.input_scale) nontrivial = nontrivial || s != 1.0f;
  ASSERT_TRUE(nontrivial);  // α > 0 was chosen, or the test shows nothing

  const std::string path = write_all({t});
  // AWQ rounds s to f16, so the file stores it as F16.
  const SafetensorsFile raw = read_safetensors(path);
  bool found = false;
  for (const Tensor& p : raw.tensors)
    if (p.name() == "awq.q.input_scale") {
      found = true;
      EXPECT_EQ(p.dtype(), DType::F16);
      EXPECT_EQ(p.shape(), Shape{kCols});
    }
  EXPECT_TRUE(found);

  const auto back = read_packed_safetensors(path);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].input_scale, t.input_scale);
  EXPECT_EQ(bytes_of(back[0].dequantize()), bytes_of(t.dequantize()));
  EXPECT_EQ(back[0].storage_bits(), t.storage_bits());
  EXPECT_EQ(back[0].describe(), t.describe());

  // The decoded weight is the effective one: codes of W·diag(s), columns divided by s.
  CompressedTensor codes_only = t;
  codes_only.input_scale.clear();
  EXPECT_EQ(bytes_of(back[0].dequantize()),
            bytes_of(awq_effective_weight(codes_only, t.input_scale)));

  // A scale that is not an f16 is kept exactly, as F32.
  CompressedTensor f32_scale = t;
  f32_scale.name = "awq.f32";
  f32_scale.input_scale[3] = 1.0f + 1e-7f * 3;
  const auto back2 = read_packed_safetensors(write_all({f32_scale}));
  EXPECT_EQ(back2[0].input_scale, f32_scale.input_scale);
}

TEST(PackedSafetensors, HostileInputScaleIsNamed) {
  const auto has = [](const std::string& what, const char* a, const char* b) {
    EXPECT_NE(what.find(a), std::string::npos) << what;
    EXPECT_NE(what.find(b), std::string::npos) << what;
  };
  const std::vector<CompressedTensor> awq{awq_layer("awq.k")};
  has(error_after(awq,
                  [](RawFile& r) {
                    part(r, "awq.k.input_scale") =
                        Tensor::zeros(DType::F16, {kCols - 1}, "awq.k.input_scale");
                  }),
      "awq.k", "input_scale has shape [63], expected [64]");
  has(error_after(awq,
                  [](RawFile& r) { part(r, "awq.k.input_scale").mutable_as<uint16_t>()[7] = 0; }),
      "awq.k", "input_scale[7] = 0");
  has(error_after(awq,
                  [](RawFile& r) {
                    part(r, "awq.k.input_scale").mutable_as<uint16_t>()[2] = 0x8000;  // -0
                  }),
      "awq.k", "input_scale[2]");
  has(error_after(awq,
                  [](RawFile& r) {
                    part(r, "awq.k.input_scale").mutable_as<uint16_t>()[9] = 0x7c00;  // +inf
                  }),
      "awq.k", "not a finite non-zero");
  has(error_after(awq,
                  [](RawFile& r) {
                    part(r, "awq.k.input_scale") =
                        Tensor::zeros(DType::U8, {kCols}, "awq.k.input_scale");
                  }),
      "awq.k", "input_scale is U8");
  // The writer refuses an input scale of the wrong length.
  CompressedTensor bad = awq[0];
  bad.input_scale.pop_back();
  EXPECT_THROW(write_all({bad}), Error);
}

// The reader opens a file by its scheme list and copies a layer out only when asked, so a
// bad part of one layer is that layer's error, found when it is read, and the layers before
// it were read whole and right.
TEST(PackedSafetensors, ReaderGoesLayerByLayer) {
  const auto layers = all_kinds();
  const std::string path = write_all(layers);
  RawFile r = load_raw(path);
  part(r, "kmeans.g32.codebook").mutable_as<uint16_t>()[0] = 0x7c00;  // +inf
  write_safetensors(path, r.tensors, {{kPackedMetadataKey, r.meta.dump()}});

  const PackedSafetensorsReader reader(path);
  ASSERT_EQ(reader.size(), layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    SCOPED_TRACE(layers[i].name);
    EXPECT_EQ(reader.scheme(i).name, layers[i].name);
    EXPECT_EQ(reader.scheme(i).coding, layers[i].coding);
    EXPECT_TRUE(reader.scheme(i).codes.empty());  // the scheme holds no parts
    if (layers[i].name == "kmeans.g32") {
      EXPECT_THROW(reader.read(i), Error);
      continue;
    }
    const CompressedTensor t = reader.read(i);
    EXPECT_EQ(t.codes, layers[i].codes);
    EXPECT_EQ(t.mask, layers[i].mask);
    EXPECT_EQ(t.dequantize().to_f32(), layers[i].dequantize().to_f32());
  }
  EXPECT_THROW(read_packed_safetensors(path), Error);
}
