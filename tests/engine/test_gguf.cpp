// GGUF writer and reader: a round trip through every value type and tensor type, a file
// compared byte for byte with one built by hand from the spec, the typed getters, the
// ModelFile view, and the writer's refusals. Malformed input is in test_gguf_malformed.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/io/gguf.h"
#include "engine/io/model_file.h"
#include "gguf_test_util.h"

using namespace mcw;
using mcw::test::Bytes;

namespace {

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * std::sin(0.37f * float(i) + 0.1f);
  return v;
}

// A tensor of a float or block type holding a deterministic pattern.
Tensor float_tensor(DType t, Shape shape, const std::string& name) {
  Tensor x = Tensor::zeros(t, shape, name);
  const auto src = ramp(size_t(x.numel()), 3.0f);
  from_f32(t, src.data(), x.mutable_data(), src.size());
  return x;
}

template <class T>
Tensor int_tensor(DType t, Shape shape, const std::string& name) {
  Tensor x = Tensor::zeros(t, shape, name);
  T* p = x.mutable_as<T>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = T(i * 37 % 251 - 120);
  return x;
}

std::vector<GGUFKeyValue> every_value_type() {
  std::vector<GGUFKeyValue> kv = {
      {"general.architecture", std::string("llama")},
      {"general.name", std::string("tiny h\xC3\xA9llo")},
      {"t.u8", uint8_t{200}},
      {"t.i8", int8_t{-5}},
      {"t.u16", uint16_t{60000}},
      {"t.i16", int16_t{-30000}},
      {"t.u32", uint32_t{4000000000u}},
      {"t.i32", int32_t{-2000000000}},
      {"t.f32", 1.5f},
      {"t.bool", true},
      {"t.string", std::string("text")},
      {"t.empty_string", std::string()},
      {"t.u64", uint64_t{(uint64_t(1) << 63) + 5}},
      {"t.i64", int64_t{-(int64_t(1) << 62)}},
      {"t.f64", 3.141592653589793},
      {"a.u8", GGUFValue::array(std::vector<uint8_t>{0, 1, 255})},
      {"a.i8", GGUFValue::array(std::vector<int8_t>{-128, 127})},
      {"a.u16", GGUFValue::array(std::vector<uint16_t>{1, 65535})},
      {"a.i16", GGUFValue::array(std::vector<int16_t>{-32768, 32767})},
      {"a.u32", GGUFValue::array(std::vector<uint32_t>{7, 8, 9})},
      {"a.i32", GGUFValue::array(std::vector<int32_t>{-1, 0, 1})},
      {"a.f32", GGUFValue::array(std::vector<float>{0.5f, -2.25f})},
      {"a.bool", GGUFValue::array(std::vector<bool>{true, false, true})},
      {"a.string", GGUFValue::array(std::vector<std::string>{"a", "", "\xE2\x82\xAC"})},
      {"a.u64", GGUFValue::array(std::vector<uint64_t>{UINT64_MAX})},
      {"a.i64", GGUFValue::array(std::vector<int64_t>{INT64_MIN, 3})},
      {"a.f64", GGUFValue::array(std::vector<double>{1e300, -0.0})},
      {"a.empty_u8", GGUFValue::array(std::vector<uint8_t>{})},
      {"a.empty_string", GGUFValue::array(std::vector<std::string>{})},
      {"a.empty_nested", GGUFValue::array(std::vector<GGUFArray>{})},
      {"a.long", GGUFValue::array(std::vector<int32_t>(100, 4))},
  };
  // [[1, 2], ["x"], [], [[true]]]: inner arrays of different element types, two levels.
  std::vector<GGUFArray> nested = {
      GGUFArray{std::vector<int32_t>{1, 2}},
      GGUFArray{std::vector<std::string>{"x"}},
      GGUFArray{std::vector<double>{}},
      GGUFArray{std::vector<GGUFArray>{GGUFArray{std::vector<bool>{true}}}},
  };
  kv.push_back({"a.nested", GGUFValue::array(std::move(nested))});
  return kv;
}

std::vector<Tensor> every_tensor_type() {
  std::vector<Tensor> t;
  t.push_back(float_tensor(DType::F32, {4, 8}, "f32"));
  t.push_back(float_tensor(DType::F32, {5}, "f32.vector"));
  t.push_back(float_tensor(DType::F32, {2, 3, 4, 5}, "f32.4d"));
  t.push_back(float_tensor(DType::F16, {3, 7}, "f16"));
  t.push_back(float_tensor(DType::BF16, {2, 2, 3}, "bf16"));
  t.push_back(float_tensor(DType::Q8_0, {3, 64}, "q8_0"));
  t.push_back(float_tensor(DType::Q8_0, {32}, "q8_0.vector"));
  t.push_back(float_tensor(DType::Q4_0, {2, 96}, "q4_0"));
  t.push_back(float_tensor(DType::Q4_1, {4, 2, 32}, "q4_1"));
  t.push_back(int_tensor<int8_t>(DType::I8, {3, 5}, "i8"));
  t.push_back(int_tensor<int16_t>(DType::I16, {9}, "i16"));
  t.push_back(int_tensor<int32_t>(DType::I32, {2, 3}, "i32"));
  t.push_back(int_tensor<int64_t>(DType::I64, {4}, "i64"));
  Tensor f64 = Tensor::zeros(DType::F64, {2, 5}, "f64");
  for (int i = 0; i < 10; ++i) f64.mutable_as<double>()[i] = 1.0 / (i + 1);
  t.push_back(f64);
  t.push_back(Tensor::zeros(DType::F32, {0, 4}, "empty"));
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.data(), b.data(), a.nbytes()) == 0);
}

}  // namespace

TEST(GgufRoundTrip, EveryValueAndTensorTypeAlignment64) {
  const std::string path = test::scratch_path("round_trip.gguf");
  const auto kvs = every_value_type();
  const auto tensors = every_tensor_type();
  write_gguf(path, kvs, tensors, 64);

  const GGUFFile g = read_gguf(path);
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.alignment, 64u);
  EXPECT_EQ(g.data_offset % 64, 0u);
  ASSERT_EQ(g.kvs.size(), kvs.size() + 1);  // general.alignment was added
  for (size_t i = 0; i < kvs.size(); ++i) {
    SCOPED_TRACE(kvs[i].key);
    EXPECT_EQ(g.kvs[i].key, kvs[i].key);
    EXPECT_EQ(g.kvs[i].value.type(), kvs[i].value.type());
    EXPECT_TRUE(g.kvs[i].value == kvs[i].value);
  }
  EXPECT_EQ(g.kvs.back().key, "general.alignment");
  EXPECT_TRUE(g.kvs.back().value == GGUFValue(uint32_t{64}));
  const GGUFArray& nested = g.get_array("a.nested");
  EXPECT_EQ(nested.element_type(), GGUFType::ARRAY);
  const auto& inner = std::get<std::vector<GGUFArray>>(nested.items);
  ASSERT_EQ(inner.size(), 4u);
  EXPECT_EQ(inner[1].element_type(), GGUFType::STRING);
  EXPECT_EQ(inner[2].element_type(), GGUFType::FLOAT64);
  EXPECT_EQ(inner[3].element_type(), GGUFType::ARRAY);

  ASSERT_EQ(g.tensors.size(), tensors.size());
  const uint64_t file_size = std::filesystem::file_size(path);
  for (size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].name());
    EXPECT_EQ(g.tensors[i].name(), tensors[i].name());
    EXPECT_EQ(g.tensors[i].dtype(), tensors[i].dtype());
    EXPECT_EQ(g.tensors[i].shape(), tensors[i].shape());
    EXPECT_TRUE(same_bytes(g.tensors[i], tensors[i]));
    EXPECT_EQ(g.tensor_offsets[i] % 64, 0u);
    EXPECT_LE(g.data_offset + g.tensor_offsets[i] + g.tensors[i].nbytes(), file_size);
  }
  // Each tensor is padded to the alignment, the last one included.
  const uint64_t last = g.tensors.size() - 1;
  EXPECT_EQ(file_size, g.data_offset + g.tensor_offsets[last] +
                           (g.tensors[last].nbytes() + 63) / 64 * 64);
  // Quantised data reads back to the values it approximates.
  const auto q = g.find_tensor("q8_0")->to_f32();
  const auto ref = ramp(q.size(), 3.0f);
  for (size_t i = 0; i < q.size(); ++i) EXPECT_NEAR(q[i], ref[i], 3.0f / 127 + 1e-6f);
}

TEST(GgufRoundTrip, ShapesAreStoredInnermostFirst) {
  const std::string path = test::scratch_path("shape.gguf");
  write_gguf(path, {}, {float_tensor(DType::F32, {2, 3, 5}, "w")});
  const auto bytes = test::read_bytes(path);
  // Header 24 bytes, no key/values; tensor info: name (8 + 1), n_dims (4), then ne.
  size_t p = 24 + 9;
  auto u64_at = [&](size_t at) {
    uint64_t x = 0;
    for (int i = 7; i >= 0; --i) x = x << 8 | bytes[at + size_t(i)];
    return x;
  };
  EXPECT_EQ(bytes[p], 3);
  p += 4;
  EXPECT_EQ(u64_at(p), 5u);
  EXPECT_EQ(u64_at(p + 8), 3u);
  EXPECT_EQ(u64_at(p + 16), 2u);
  EXPECT_EQ(read_gguf(path).tensors[0].shape(), (Shape{2, 3, 5}));
}

TEST(GgufBytes, TinyFileMatchesHandBuiltBytes) {
  const std::string path = test::scratch_path("tiny.gguf");
  const std::vector<float> values = {1, -2, 0.5f, 3, 4, -8};
  write_gguf(path, {{"general.architecture", std::string("llama")}},
             {Tensor::from_f32(values, {2, 3}, "w")});

  Bytes want = Bytes::header(3, 1, 1);            // 24 bytes
  want.str("general.architecture").u32(8).str("llama");  // 8+20 + 4 + 8+5 = 45
  want.tensor_info("w", {3, 2}, 0, 0);            // 8+1 + 4 + 16 + 4 + 8 = 41
  ASSERT_EQ(want.size(), 110u);
  want.zeros(128 - 110);                          // padding to 32
  for (float v : values) want.f32(v);             // 24 bytes of data
  want.zeros(8);                                  // the data padded to 32 as well
  ASSERT_EQ(want.size(), 160u);
  EXPECT_EQ(test::read_bytes(path), want.b);

  const GGUFFile g = read_gguf(path);
  EXPECT_EQ(g.data_offset, 128u);
  EXPECT_EQ(g.tensors[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(g.tensors[0].to_f32(), values);
}

TEST(GgufBytes, Version2ReadsLikeVersion3) {
  const std::string path = test::scratch_path("v2.gguf");
  write_gguf(path, {{"k", uint32_t{5}}}, {float_tensor(DType::F32, {4}, "w")});
  auto bytes = test::read_bytes(path);
  bytes[4] = 2;
  test::write_bytes(path, bytes);
  const GGUFFile g = read_gguf(path);
  EXPECT_EQ(g.version, 2u);
  EXPECT_EQ(g.get_u64("k"), 5u);
  EXPECT_EQ(g.tensors[0].shape(), (Shape{4}));
}

TEST(GgufAccessors, TypedGettersAndTheirErrors) {
  const std::string path = test::scratch_path("getters.gguf");
  write_gguf(path,
             {{"llama.block_count", std::string("32")},
              {"llama.context_length", uint32_t{2048}},
              {"llama.eps", 1e-5f},
              {"neg", int32_t{-3}},
              {"big", uint64_t{UINT64_MAX}},
              {"flag", false},
              {"tokens", GGUFValue::array(std::vector<std::string>{"<s>", "a"})},
              {"scores", GGUFValue::array(std::vector<float>{0.5f, -1.0f})},
              {"types", GGUFValue::array(std::vector<int32_t>{1, 6})}},
             {});
  const GGUFFile g = read_gguf(path);
  EXPECT_EQ(g.get_u64("llama.context_length"), 2048u);
  EXPECT_EQ(g.get_i64("llama.context_length"), 2048);
  EXPECT_EQ(g.get_f64("llama.context_length"), 2048.0);
  EXPECT_FLOAT_EQ(float(g.get_f64("llama.eps")), 1e-5f);
  EXPECT_EQ(g.get_i64("neg"), -3);
  EXPECT_EQ(g.get_u64("big"), UINT64_MAX);
  EXPECT_FALSE(g.get_bool("flag"));
  EXPECT_EQ(g.get_u64("missing", 7), 7u);
  EXPECT_EQ(g.get_string("missing", "x"), "x");
  EXPECT_EQ(g.get_string_array("tokens"), (std::vector<std::string>{"<s>", "a"}));
  EXPECT_EQ(g.get_float_array("scores"), (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ(g.get_float_array("types"), (std::vector<float>{1.0f, 6.0f}));
  EXPECT_EQ(g.get_int_array("types"), (std::vector<int64_t>{1, 6}));

  auto message = [&](auto&& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      EXPECT_EQ(e.file(), path);
      return e.message();
    }
    return "no error";
  };
  EXPECT_EQ(message([&] { g.get_u64("llama.block_count"); }),
            "key 'llama.block_count' is a STRING, expected an integer");
  EXPECT_EQ(message([&] { g.get_u64("llama.block_count", 1); }),
            "key 'llama.block_count' is a STRING, expected an integer");
  EXPECT_EQ(message([&] { g.get_string("llama.context_length"); }),
            "key 'llama.context_length' is a UINT32, expected a STRING");
  EXPECT_EQ(message([&] { g.get_u64("absent"); }), "key 'absent' is missing");
  EXPECT_NE(message([&] { g.get_u64("neg"); }).find("negative"), std::string::npos);
  EXPECT_NE(message([&] { g.get_i64("big"); }).find("signed 64-bit"), std::string::npos);
  EXPECT_EQ(message([&] { g.get_string_array("scores"); }),
            "key 'scores' is an array of FLOAT32, expected an array of STRING");
  EXPECT_EQ(message([&] { g.get_int_array("scores"); }),
            "key 'scores' is an array of FLOAT32, expected an array of integers");
  EXPECT_EQ(message([&] { g.get_bool("neg"); }), "key 'neg' is an INT32, expected a BOOL");
  EXPECT_EQ(message([&] { g.get_f64("tokens"); }),
            "key 'tokens' is an array of STRING, expected a number");
}

TEST(GgufModelFile, HparamsMetadataAndTensors) {
  const std::string path = test::scratch_path("model.gguf");
  auto kvs = every_value_type();
  kvs.push_back({"general.bad_utf8", std::string("ab\xFF")});
  write_gguf(path, kvs, every_tensor_type());
  const ModelFile m = open_model_file(path);
  EXPECT_EQ(m.format, ModelFormat::GGUF);
  EXPECT_EQ(m.architecture, "llama");
  EXPECT_EQ(m.metadata.at("general.name"), "tiny h\xC3\xA9llo");
  EXPECT_EQ(m.metadata.at("general.bad_utf8"), "ab\xEF\xBF\xBD");
  EXPECT_EQ(m.metadata.count("t.string"), 0u);
  EXPECT_EQ(m.hparams.size(), kvs.size());  // alignment 32: nothing added
  EXPECT_EQ(m.hparams["t.u32"], 4000000000u);
  EXPECT_EQ(m.hparams["t.i64"], -(int64_t(1) << 62));
  EXPECT_EQ(m.hparams["t.bool"], true);
  EXPECT_EQ(m.hparams["a.string"], nlohmann::ordered_json({"a", "", "\xE2\x82\xAC"}));
  EXPECT_EQ(m.hparams["a.bool"], nlohmann::ordered_json({true, false, true}));
  EXPECT_EQ(m.hparams["a.long"], "array of 100 int32");
  EXPECT_EQ(m.hparams["a.nested"].dump(), R"([[1,2],["x"],[],[[true]]])");
  EXPECT_EQ(m.hparams["a.empty_nested"], nlohmann::ordered_json::array());
  EXPECT_NO_THROW((void)m.hparams.dump());
  ASSERT_EQ(m.tensors.size(), every_tensor_type().size());
  EXPECT_EQ(m.find("q4_1")->shape(), (Shape{4, 2, 32}));
  EXPECT_EQ(m.find("q4_1")->dtype(), DType::Q4_1);
}

TEST(GgufWriter, RefusesWhatGgufCannotHold) {
  const std::string path = test::scratch_path("refused.gguf");
  std::filesystem::remove(path);
  auto refuses = [&](const std::vector<GGUFKeyValue>& kvs, const std::vector<Tensor>& ts,
                     uint64_t alignment, const std::string& phrase) {
    try {
      write_gguf(path, kvs, ts, alignment);
      ADD_FAILURE() << "accepted; expected: " << phrase;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(path));
  };
  const Tensor w = float_tensor(DType::F32, {4}, "w");
  refuses({{"k", 1.0f}, {"k", 2.0f}}, {}, 32, "given twice");
  refuses({}, {w, w}, 32, "given twice");
  refuses({}, {}, 48, "not a power of two");
  refuses({}, {}, 0, "not a power of two");
  refuses({{"general.alignment", uint32_t{32}}}, {}, 64, "does not match");
  refuses({{"general.alignment", uint64_t{64}}}, {}, 64, "does not match");
  refuses({}, {Tensor::zeros(DType::BOOL, {4}, "b")}, 32, "which GGUF cannot store");
  refuses({}, {Tensor::zeros(DType::F32, {1, 1, 1, 1, 2}, "five")}, 32, "at most 4");
  refuses({}, {Tensor::zeros(DType::F32, {2}, std::string(64, 'n'))}, 32, "longer than 63");
  refuses({{"bad\xC0\x80", 1.0f}}, {}, 32, "not valid UTF-8");
  GGUFArray deep{std::vector<uint8_t>{}};
  for (int i = 0; i < 8; ++i) deep = GGUFArray{std::vector<GGUFArray>{deep}};
  refuses({{"deep", GGUFValue(deep)}}, {}, 32, "more than 8 deep");

  // The alignment key given by the caller is kept, not written twice.
  write_gguf(path, {{"general.alignment", uint32_t{128}}}, {w}, 128);
  const GGUFFile g = read_gguf(path);
  EXPECT_EQ(g.kvs.size(), 1u);
  EXPECT_EQ(g.alignment, 128u);
  EXPECT_EQ(g.data_offset % 128, 0u);
}

TEST(GgufTypes, GgmlCodesAndUtf8) {
  EXPECT_EQ(ggml_type_from_dtype(DType::BF16), 30u);
  EXPECT_EQ(dtype_from_ggml_type(8), DType::Q8_0);
  EXPECT_EQ(dtype_from_ggml_type(12), DType::Q4_K);
  EXPECT_EQ(dtype_from_ggml_type(14), DType::Q6_K);
  EXPECT_EQ(dtype_from_ggml_type(23), DType::IQ4_XS);
  EXPECT_EQ(dtype_from_ggml_type(16), std::nullopt);  // IQ2_XXS: a grid type, not read yet
  EXPECT_EQ(ggml_type_name(12), "Q4_K");
  EXPECT_EQ(ggml_type_name(16), "IQ2_XXS");
  EXPECT_EQ(ggml_type_name(99), "");
  EXPECT_TRUE(is_valid_utf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // cut short
}
