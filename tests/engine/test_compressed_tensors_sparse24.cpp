// compressed-tensors' sparse-24-bitmask format, written by mcw export and read by MCW's
// compressed-tensors reader. The files are checked against the format as this test states
// it, independently of engine/io/sparse24_bitmask.cpp (compressed-tensors'
// Sparse24BitMaskCompressor and pack_into_bitmasks):
//   <p>.shape       I64 [2, 1] = rows, cols
//   <p>.compressed  [rows, cols/2], the weight's dtype: the flagged values, row-major
//   <p>.bitmask     U8 [rows, ceil(cols/8)]: column c of a row is bit (c % 8) of byte c / 8
//                   (numpy.packbits(axis=-1, bitorder="little")); exactly 2 of every
//                   aligned 4 flagged, every nonzero among them.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "compress_test_util.h"
#include "engine/compress/compress_llama.h"
#include "engine/core/error.h"
#include "engine/export/compressed_tensors_export.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/model_file.h"
#include "engine/io/safetensors.h"
#include "engine/model/llama_save.h"
#include "engine/recipe/recipe.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

// A compressed model directory (what mcw compress writes) from `recipe`, each layer passed
// through `edit` before packed.safetensors is written.
std::map<std::string, CompressedTensor> write_compressed(
    const fs::path& dir, const std::string& recipe,
    const std::function<void(CompressedTensor&)>& edit = {}) {
  const LlamaModel base = test::random_llama(test::compress_config(2), 31);
  CompressionResult r = compress_llama(base, parse_recipe(recipe, "sparse24-test"),
                                       test::random_tokens(1000, 32), test::calib_options(4, 64));
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(r.model, dir.string(), tok);
  std::map<std::string, CompressedTensor> layers;
  std::vector<const CompressedTensor*> packed;
  for (const CompressedLayer& l : r.layers) layers[l.tensor.name] = l.tensor;
  for (auto& [name, t] : layers) {
    if (edit) edit(t);
    packed.push_back(&t);
  }
  write_packed_safetensors((dir / kPackedFileName).string(), packed);
  return layers;
}

const Tensor* find(const SafetensorsFile& f, const std::string& name) {
  for (const Tensor& t : f.tensors)
    if (t.name() == name) return &t;
  return nullptr;
}

bool bit(const uint8_t* mask, int64_t mask_cols, int64_t r, int64_t c) {
  return (mask[r * mask_cols + c / 8] >> (c % 8)) & 1;
}

// Whether `f` holds layer `prefix` as the sparse-24-bitmask form of the F32 matrix `w`
// [rows, cols]; `why` says what differs first. MCW flags the nonzeros, then the first zeros
// of a group: the bitmask must be exactly that.
bool holds_sparse24(const SafetensorsFile& f, const std::string& prefix, const Tensor& w,
                    std::string& why) {
  const int64_t rows = w.dim(0), cols = w.dim(1), mask_cols = (cols + 7) / 8;
  const Tensor *shape = find(f, prefix + ".shape"), *vals = find(f, prefix + ".compressed"),
               *mask = find(f, prefix + ".bitmask");
  if (!shape || !vals || !mask) return why = "a part is missing", false;
  if (shape->dtype() != DType::I64 || shape->shape() != Shape{2, 1} ||
      shape->as<int64_t>()[0] != rows || shape->as<int64_t>()[1] != cols)
    return why = "shape", false;
  if (vals->dtype() != DType::F32 || vals->shape() != Shape{rows, cols / 2})
    return why = "compressed's dtype or shape", false;
  if (mask->dtype() != DType::U8 || mask->shape() != Shape{rows, mask_cols})
    return why = "bitmask's dtype or shape", false;
  const float* v = w.as<float>();
  const float* kept = vals->as<float>();
  const auto* m = mask->as<uint8_t>();
  std::vector<uint8_t> want(size_t(rows * mask_cols), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols; g += 4) {
      int flagged = 0;
      for (int k = 0; k < 4; ++k) flagged += v[r * cols + g + k] != 0.0f;
      for (int k = 0; k < 4; ++k) {
        const bool nonzero = v[r * cols + g + k] != 0.0f;
        const bool flag = nonzero || (flagged < 2 && (flagged += 1));
        if (flag) want[size_t(r * mask_cols + (g + k) / 8)] |= uint8_t(1u << ((g + k) % 8));
      }
    }
  if (std::memcmp(want.data(), m, want.size()) != 0) return why = "bitmask bytes", false;
  int64_t next = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      if (bit(m, mask_cols, r, c) && std::memcmp(&kept[next++], &v[r * cols + c], 4) != 0)
        return why = "compressed value " + std::to_string(next - 1), false;
  if (next != rows * cols / 2) return why = "flagged count", false;
  return true;
}

// `dir` with model.safetensors rewritten by `edit` (and config.json by `edit_config`).
fs::path mutated(const fs::path& src, const fs::path& dst,
                 const std::function<void(std::vector<Tensor>&)>& edit,
                 const std::function<void(nlohmann::json&)>& edit_config = {}) {
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "model.safetensors")
      fs::copy_file(e.path(), dst / e.path().filename(), fs::copy_options::overwrite_existing);
  const SafetensorsFile f = read_safetensors((src / "model.safetensors").string());
  std::vector<Tensor> ts;
  for (const Tensor& t : f.tensors) {  // owned copies, to edit
    Tensor c = Tensor::zeros(t.dtype(), t.shape(), t.name());
    std::memcpy(c.mutable_data(), t.data(), t.nbytes());
    ts.push_back(c);
  }
  edit(ts);
  write_safetensors((dst / "model.safetensors").string(), ts, {{"format", "pt"}});
  if (edit_config) {
    nlohmann::json cfg;
    std::ifstream(dst / "config.json") >> cfg;
    edit_config(cfg);
    std::ofstream(dst / "config.json") << cfg.dump(2);
  }
  return dst;
}

Tensor& part(std::vector<Tensor>& ts, const std::string& name) {
  for (Tensor& t : ts)
    if (t.name() == name) return t;
  throw std::runtime_error("no tensor " + name);
}

Tensor replaced(const Tensor& t, DType dtype, Shape shape) {
  Tensor c = Tensor::zeros(dtype, std::move(shape), t.name());
  std::memcpy(c.mutable_data(), t.data(), std::min(t.nbytes(), c.nbytes()));
  return c;
}

// 2:4 on every linear: SparseGPT on attention, magnitude on the MLP.
constexpr const char* kSparseRecipe =
    "stages:\n"
    "  - algorithm: sparsegpt\n    pattern: \"2:4\"\n    targets: ['*self_attn*']\n"
    "  - algorithm: magnitude\n    pattern: \"2:4\"\n    targets: ['*mlp*']\n";

struct Exported {
  fs::path root, ct;
  std::map<std::string, CompressedTensor> layers;
  CtExportReport report;
};

const Exported& sparse_export() {
  static const Exported e = [] {
    Exported x;
    x.root = test::fresh_temp_dir();
    x.layers = write_compressed(x.root / "compressed", kSparseRecipe);
    x.ct = x.root / "ct";
    x.report = export_compressed_tensors((x.root / "compressed").string(), x.ct.string());
    return x;
  }();
  return e;
}

const std::string kLayer = "model.layers.0.self_attn.q_proj";

}  // namespace

TEST(Sparse24Export, TwoFourLayersAreWrittenInTheFormat) {
  const Exported& e = sparse_export();
  EXPECT_TRUE(e.report.packed.empty());
  EXPECT_TRUE(e.report.dense.empty());
  ASSERT_EQ(e.report.sparse24.size(), e.layers.size());  // every linear: 2 blocks x 7
  const ModelFile src = open_model_file((e.root / "compressed").string());
  const SafetensorsFile f = read_safetensors((e.ct / "model.safetensors").string());
  for (const auto& [name, layer] : e.layers) {
    ASSERT_EQ(layer.nm_m, 4) << name;
    const std::string prefix = name.substr(0, name.rfind('.'));
    std::string why;
    EXPECT_TRUE(holds_sparse24(f, prefix, *src.find(name), why)) << name << ": " << why;
    EXPECT_EQ(find(f, name), nullptr) << name;  // no dense copy beside the parts
  }
  EXPECT_NE(find(f, "model.embed_tokens.weight"), nullptr);

  nlohmann::json cfg;
  std::ifstream(e.ct / "config.json") >> cfg;
  const auto& q = cfg["quantization_config"];
  EXPECT_EQ(q["quant_method"], "compressed-tensors");
  EXPECT_FALSE(q.contains("config_groups"));  // sparse only, as llm-compressor writes it
  const auto& s = q["sparsity_config"];
  EXPECT_EQ(s["format"], "sparse-24-bitmask");
  EXPECT_EQ(s["sparsity_structure"], "2:4");
  EXPECT_EQ(s["registry_requires_subclass"], false);
  std::set<std::string> targets, want;
  for (const auto& t : s["targets"]) targets.insert(t.get<std::string>());
  for (const auto& [name, layer] : e.layers) want.insert(name.substr(0, name.rfind('.')));
  EXPECT_EQ(targets, want);
  EXPECT_NE(s["ignore"].dump().find("lm_head"), std::string::npos);
  uint64_t zeros = 0, total = 0;  // over every float value of the model
  for (const Tensor& t : src.tensors)
    for (float v : t.to_f32()) zeros += v == 0.0f, ++total;
  EXPECT_DOUBLE_EQ(s["global_sparsity"].get<double>(), double(zeros) / double(total));
}

TEST(Sparse24Export, ReadsBackToTheLayersValues) {
  const Exported& e = sparse_export();
  const ModelFile src = open_model_file((e.root / "compressed").string());
  const ModelFile back = open_model_file(e.ct.string());
  for (const auto& [name, layer] : e.layers) {
    const Tensor* t = back.find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->dtype(), DType::Packed) << name;
    EXPECT_EQ(t->shape(), (Shape{layer.rows, layer.cols})) << name;
    EXPECT_EQ(t->decoder()->describe(), "compressed-tensors sparse-24-bitmask F32") << name;
    const std::vector<float> got = t->to_f32(), want = src.find(name)->to_f32();
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0) << name;
    // A window that starts and ends mid-group decodes the same values.
    std::vector<float> part(37);
    t->decoder()->decode(size_t(layer.cols) + 3, part.size(), part.data());
    EXPECT_EQ(std::memcmp(part.data(), want.data() + layer.cols + 3, part.size() * 4), 0) << name;
  }
  for (const char* other : {"model.embed_tokens.weight", "model.norm.weight"})
    EXPECT_EQ(back.find(other)->to_f32(), src.find(other)->to_f32()) << other;
}

// The checks above would catch a writer (or a file) with the bits of each byte in the
// other order (numpy's default bitorder="big"): the same file with reversed bytes fails.
TEST(Sparse24Export, MutationWithTheOtherBitOrderIsCaught) {
  const Exported& e = sparse_export();
  const fs::path bad = mutated(e.ct, e.root / "big-endian-bits", [](std::vector<Tensor>& ts) {
    for (Tensor& t : ts) {
      if (t.name().size() < 8 || t.name().compare(t.name().size() - 8, 8, ".bitmask") != 0)
        continue;
      auto* b = static_cast<uint8_t*>(t.mutable_data());
      for (size_t i = 0; i < t.nbytes(); ++i) {
        uint8_t r = 0;
        for (int k = 0; k < 8; ++k) r |= uint8_t(((b[i] >> k) & 1) << (7 - k));
        b[i] = r;
      }
    }
  });
  const SafetensorsFile f = read_safetensors((bad / "model.safetensors").string());
  const ModelFile src = open_model_file((e.root / "compressed").string());
  const std::string name = kLayer + ".weight";
  std::string why;
  EXPECT_FALSE(holds_sparse24(f, kLayer, *src.find(name), why));
  EXPECT_EQ(why, "bitmask bytes");
  // Each nibble still flags 2 of 4, so it reads, but not to the layer's values.
  const ModelFile back = open_model_file(bad.string());
  EXPECT_NE(back.find(name)->to_f32(), src.find(name)->to_f32());
}

TEST(Sparse24Export, QuantisedMixedAndHalfFusedLayersStayDense) {
  const fs::path root = test::fresh_temp_dir();
  // 2:4 then 4-bit RTN on q/k/v, 2:4 on the MLP, 4-bit RTN on o_proj (pack-quantized).
  // A later stage replaces the layer, mask and all (the pruned weights' codes are those of
  // 0, so it goes out pack-quantized): q/k/v get a mask of their nonzeros back (at most 2
  // of every 4), as a layer that kept both the mask and the codes would have.
  write_compressed(
      root / "mixed",
      "stages:\n"
      "  - algorithm: magnitude\n    pattern: \"2:4\"\n"
      "    targets: ['*q_proj*', '*k_proj*', '*v_proj*', '*mlp*']\n"
      "  - algorithm: rtn\n    bits: 4\n    group_size: 32\n"
      "    targets: ['*self_attn*']\n",
      [](CompressedTensor& t) {
        if (t.coding != WeightCoding::Affine || t.name.find("o_proj") != std::string::npos) return;
        const Tensor w = t.dequantize();
        t.mask = mask_from_values(w.as<float>(), size_t(w.numel()));
      });
  const CtExportReport r =
      export_compressed_tensors((root / "mixed").string(), (root / "mixed-ct").string());
  EXPECT_TRUE(r.sparse24.empty());
  EXPECT_EQ(r.packed.size(), 2u);  // o_proj of both blocks
  std::map<std::string, std::string> why(r.dense.begin(), r.dense.end());
  EXPECT_EQ(why["model.layers.0.self_attn.q_proj.weight"].rfind("2:4 sparse and quantised", 0), 0u)
      << why["model.layers.0.self_attn.q_proj.weight"];
  EXPECT_NE(why["model.layers.1.mlp.down_proj.weight"].find("beside pack-quantized"),
            std::string::npos)
      << why["model.layers.1.mlp.down_proj.weight"];
  const ModelFile back = open_model_file((root / "mixed-ct").string());
  EXPECT_EQ(back.find("model.layers.1.mlp.down_proj.weight")->dtype(), DType::F32);

  // 2:4 on q_proj and down_proj only: q_proj's fused k/v are dense, so q_proj is too.
  write_compressed(root / "half",
                   "stages:\n  - algorithm: magnitude\n    pattern: \"2:4\"\n"
                   "    targets: ['*q_proj*', '*down_proj*']\n");
  const CtExportReport h =
      export_compressed_tensors((root / "half").string(), (root / "half-ct").string());
  EXPECT_EQ(h.sparse24, (std::vector<std::string>{"model.layers.0.mlp.down_proj.weight",
                                                  "model.layers.1.mlp.down_proj.weight"}));
  ASSERT_EQ(h.dense.size(), 2u);
  EXPECT_NE(h.dense[0].second.find("fused"), std::string::npos) << h.dense[0].second;

  // Unstructured sparsity keeps the reason it always had.
  write_compressed(root / "unstructured",
                   "stages:\n  - algorithm: magnitude\n    sparsity: 0.5\n"
                   "    targets: ['*down_proj*']\n  - algorithm: rtn\n    bits: 4\n"
                   "    group_size: 32\n    targets: ['*self_attn*']\n");
  const CtExportReport u = export_compressed_tensors((root / "unstructured").string(),
                                                     (root / "unstructured-ct").string());
  ASSERT_EQ(u.dense.size(), 2u);
  EXPECT_EQ(u.dense[0].second, "a sparsity mask");
}

TEST(Sparse24Read, HostileFilesGiveOneErrorNamingTheFile) {
  const Exported& e = sparse_export();
  const ModelFile src = open_model_file((e.root / "compressed").string());
  const CompressedTensor& l = e.layers.at(kLayer + ".weight");
  const int64_t rows = l.rows, cols = l.cols;
  int n = 0;
  const auto expect_error = [&](const std::function<void(std::vector<Tensor>&)>& edit,
                                const std::string& tensor, const std::string& says,
                                const std::function<void(nlohmann::json&)>& cfg = {}) {
    const fs::path dir = mutated(e.ct, e.root / ("hostile" + std::to_string(n++)), edit, cfg);
    try {
      open_model_file(dir.string());
      ADD_FAILURE() << "no error for " << tensor << " / " << says;
    } catch (const Error& err) {
      EXPECT_NE(err.file().find(dir.string()), std::string::npos) << err.what();
      EXPECT_NE(err.message().find(tensor), std::string::npos) << err.what();
      EXPECT_NE(err.message().find(says), std::string::npos) << err.what();
      EXPECT_EQ(std::string(err.what()).find('\n'), std::string::npos) << err.what();
    }
  };
  // A shape the compressed values do not fit, and one that is no shape.
  expect_error(
      [&](auto& ts) { part(ts, kLayer + ".shape").template mutable_as<int64_t>()[1] += 8; },
      kLayer + ".compressed", "has shape");
  expect_error(
      [&](auto& ts) { part(ts, kLayer + ".shape").template mutable_as<int64_t>()[0] = -1; },
      kLayer + ".shape", "is not a matrix shape");
  expect_error([&](auto& ts) { part(ts, kLayer + ".shape").template mutable_as<int64_t>()[1] = 6; },
               kLayer + ".shape", "not whole groups of 4");
  expect_error(
      [&](auto& ts) {
        Tensor& s = part(ts, kLayer + ".shape");
        s = replaced(s, DType::F32, {2, 1});
      },
      kLayer + ".shape", "expected two integers");
  // Short compressed values; values of the wrong dtype; a bitmask of the wrong dtype or size.
  expect_error(
      [&](auto& ts) {
        Tensor& c = part(ts, kLayer + ".compressed");
        c = replaced(c, DType::F32, {rows, cols / 2 - 1});
      },
      kLayer + ".compressed", "has shape");
  expect_error(
      [&](auto& ts) {
        Tensor& c = part(ts, kLayer + ".compressed");
        c = replaced(c, DType::I32, {rows, cols / 2});
      },
      kLayer + ".compressed", "has dtype I32");
  expect_error(
      [&](auto& ts) {
        Tensor& b = part(ts, kLayer + ".bitmask");
        b = replaced(b, DType::F16, {rows, cols / 16});
      },
      kLayer + ".bitmask", "has dtype F16");
  expect_error(
      [&](auto& ts) {
        Tensor& b = part(ts, kLayer + ".bitmask");
        b = replaced(b, DType::U8, {rows, cols / 8 - 1});
      },
      kLayer + ".bitmask", "has shape");
  // More flags than values (3 of 4: reading them would run past the row), and fewer.
  expect_error(
      [&](auto& ts) { part(ts, kLayer + ".bitmask").template mutable_as<uint8_t>()[5] |= 0x0f; },
      kLayer + ".bitmask", "flag 4 values");
  expect_error(
      [&](auto& ts) {
        auto* b = part(ts, kLayer + ".bitmask").template mutable_as<uint8_t>();
        const uint8_t lo = b[0] & 0x0f;
        uint8_t add = 0;
        for (int k = 0; k < 4 && !add; ++k)
          if (!(lo >> k & 1)) add = uint8_t(1u << k);
        b[0] |= add;
      },
      kLayer + ".bitmask", "flag 3 values");
  expect_error(
      [&](auto& ts) { part(ts, kLayer + ".bitmask").template mutable_as<uint8_t>()[0] &= 0xf0; },
      kLayer + ".bitmask", "flag 0 values");
  // A part missing.
  expect_error(
      [&](auto& ts) {
        ts.erase(std::find_if(ts.begin(), ts.end(),
                              [&](const Tensor& t) { return t.name() == kLayer + ".bitmask"; }));
      },
      kLayer + ".bitmask", "missing");
  // The unstructured format stays refused.
  expect_error([](auto&) {}, ".bitmask", "sparse-bitmask",
               [](nlohmann::json& c) {
                 c["quantization_config"]["sparsity_config"]["format"] = "sparse-bitmask";
               });
  (void)src;
}

// A quantised layer compressed the same way (llm-compressor's 2:4 + INT8/FP8 checkpoints):
// the codes are expanded and scaled as an int-quantized weight.
TEST(Sparse24Read, Int8CodesWithAScaleReadAsAQuantisedLayer) {
  const Exported& e = sparse_export();
  const CompressedTensor& l = e.layers.at(kLayer + ".weight");
  const int64_t rows = l.rows, cols = l.cols;
  std::vector<int8_t> codes(size_t(rows * cols), 0);
  std::vector<float> scale(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    scale[size_t(r)] = 0.01f * float(r + 1);
    for (int64_t c = 0; c < cols; ++c)
      if ((c + r) % 4 < 2) codes[size_t(r * cols + c)] = int8_t((r * 7 + c * 3) % 200 - 100);
  }
  const fs::path dir = mutated(e.ct, e.root / "int8", [&](std::vector<Tensor>& ts) {
    Tensor& v = part(ts, kLayer + ".compressed");
    v = Tensor::zeros(DType::I8, {rows, cols / 2}, v.name());
    auto* out = v.mutable_as<int8_t>();
    auto* mask = part(ts, kLayer + ".bitmask").mutable_as<uint8_t>();
    std::memset(mask, 0, size_t(rows * cols / 8));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        if ((c + r) % 4 < 2) {
          mask[r * cols / 8 + c / 8] |= uint8_t(1u << (c % 8));
          *out++ = codes[size_t(r * cols + c)];
        }
    Tensor s = Tensor::zeros(DType::F32, {rows, 1}, kLayer + ".weight_scale");
    std::memcpy(s.mutable_data(), scale.data(), scale.size() * 4);
    ts.push_back(s);
  });
  const ModelFile back = open_model_file(dir.string());
  const Tensor* t = back.find(kLayer + ".weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->decoder()->describe(), "compressed-tensors int8 per channel sym");
  const std::vector<float> got = t->to_f32();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_EQ(got[size_t(r * cols + c)], float(codes[size_t(r * cols + c)]) * scale[size_t(r)])
          << r << ", " << c;
}
