// safetensors: round trips through writer and reader, the writer's exact bytes against
// hand-built files, and a table of hostile files each refused with one clear error.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "tests/engine/temp_files.h"

using namespace mcw;
using mcw::test::fresh_temp_dir;
using mcw::test::le64;
using mcw::test::read_bytes;
using mcw::test::write_bytes;

namespace {

// A tensor whose bytes follow a pattern that differs per `seed`.
Tensor patterned(DType dtype, Shape shape, std::string name, int seed) {
  Tensor t = Tensor::zeros(dtype, std::move(shape), std::move(name));
  auto* p = static_cast<unsigned char*>(t.nbytes() ? t.mutable_data() : nullptr);
  for (size_t i = 0; i < t.nbytes(); ++i)
    p[i] = static_cast<unsigned char>(i * 37 + size_t(seed) * 11 + 1);
  return t;
}

std::string bytes_of(const Tensor& t) {
  return std::string(static_cast<const char*>(t.data()), t.nbytes());
}

// A safetensors file as raw bytes: the length field, the header text as given, the data.
std::string raw_file(const std::string& header, const std::string& data = {}) {
  return le64(header.size()) + header + data;
}

}  // namespace

TEST(Safetensors, RoundTripKeepsNamesShapesDtypesBytesAndMetadata) {
  const auto path = (fresh_temp_dir() / "rt.safetensors").string();
  const std::vector<Tensor> written = {
      patterned(DType::F32, {2, 3}, "model.layers.0.weight", 1),
      patterned(DType::BF16, {5}, "b\xc3\xbc.bias", 2),  // non-ASCII name
      patterned(DType::I64, {}, "scalar", 3),           // 0-d
      patterned(DType::U8, {0, 5}, "empty", 4),         // zero elements
      patterned(DType::F16, {3, 1, 2}, "f16", 5),
      patterned(DType::BOOL, {3}, "mask", 6),
      patterned(DType::F8_E4M3, {2, 2}, "fp8", 7),
      patterned(DType::F64, {1}, "double", 8),
      patterned(DType::I8, {7}, "odd_length", 9),  // leaves later data unaligned
      patterned(DType::U32, {2}, "u32", 10),
  };
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"quote\"and\nnewline", "v\xc3\xa4lue"}, {"empty", ""}};
  write_safetensors(path, written, metadata);

  const SafetensorsFile read = read_safetensors(path);
  ASSERT_EQ(read.tensors.size(), written.size());
  for (size_t i = 0; i < written.size(); ++i) {
    SCOPED_TRACE(written[i].name());
    EXPECT_EQ(read.tensors[i].name(), written[i].name());
    EXPECT_EQ(read.tensors[i].dtype(), written[i].dtype());
    EXPECT_EQ(read.tensors[i].shape(), written[i].shape());
    EXPECT_EQ(bytes_of(read.tensors[i]), bytes_of(written[i]));
  }
  EXPECT_EQ(read.metadata, metadata);
}

TEST(Safetensors, WriterProducesExactBytesWorkedOutByHand) {
  const auto dir = fresh_temp_dir();
  const auto path = (dir / "tiny.safetensors").string();
  Tensor a = Tensor::zeros(DType::F16, {2}, "a");
  const unsigned char a_bytes[4] = {0x00, 0x3c, 0x00, 0x40};  // f16 1.0, 2.0
  std::memcpy(a.mutable_data(), a_bytes, 4);
  write_safetensors(path, {a}, {{"format", "pt"}});

  // 85 characters of JSON, padded with 3 spaces to 88 = 0x58.
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})";
  ASSERT_EQ(json.size(), 85u);
  const std::string expected = std::string("\x58\0\0\0\0\0\0\0", 8) + json + "   " +
                               std::string("\x00\x3c\x00\x40", 4);
  EXPECT_EQ(read_bytes(path), expected);
}

TEST(Safetensors, WriterOmitsEmptyMetadataAndWritesScalarAndEmptyShapes) {
  const auto path = (fresh_temp_dir() / "tiny2.safetensors").string();
  Tensor s = Tensor::zeros(DType::I32, {}, "s");
  *s.mutable_as<int32_t>() = 0x01020304;
  write_safetensors(path, {s, Tensor::zeros(DType::U8, {0, 3}, "e")});

  // 107 characters, padded with 5 spaces to 112 = 0x70; the empty tensor adds no data.
  const std::string json =
      R"({"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]},)"
      R"("e":{"dtype":"U8","shape":[0,3],"data_offsets":[4,4]}})";
  ASSERT_EQ(json.size(), 107u);
  const std::string expected =
      std::string("\x70\0\0\0\0\0\0\0", 8) + json + "     " + std::string("\x04\x03\x02\x01", 4);
  EXPECT_EQ(read_bytes(path), expected);
}

TEST(Safetensors, ReadsForeignLayoutAndReturnsTensorsInDataOffsetOrder) {
  // Whitespace, keys in another order, names that sort against their data order, and a
  // gap-free data section as another writer might lay it out.
  const std::string header =
      "{ \"a\" : {\"data_offsets\": [4, 12], \"shape\": [2], \"dtype\": \"F32\"},\n"
      "  \"z\" : {\"shape\": [2, 2], \"dtype\": \"U8\", \"data_offsets\": [0, 4]},\n"
      "  \"__metadata__\": {\"k\": \"v\"} }";
  const std::string data = "\x01\x02\x03\x04" + std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);
  const auto path = (fresh_temp_dir() / "foreign.safetensors").string();
  write_bytes(path, raw_file(header, data));

  const SafetensorsFile f = read_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].name(), "z");
  EXPECT_EQ(f.tensors[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(bytes_of(f.tensors[0]), "\x01\x02\x03\x04");
  EXPECT_EQ(f.tensors[1].name(), "a");
  EXPECT_EQ(f.tensors[1].to_f32(), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"k", "v"}}));
}

TEST(Safetensors, EmptyHeaderObjectHasNoTensors) {
  const auto path = (fresh_temp_dir() / "none.safetensors").string();
  write_bytes(path, raw_file("{}      "));
  const SafetensorsFile f = read_safetensors(path);
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_TRUE(f.metadata.empty());
}

TEST(Safetensors, BracketsInsideStringsDoNotCountAsNesting) {
  const std::string value = R"([[[[[[[[[[ \" {{{{{{{{{{ \\)";
  const auto path = (fresh_temp_dir() / "brackets.safetensors").string();
  write_bytes(path, raw_file(R"({"__metadata__":{"k":")" + value + R"("}})"));
  const SafetensorsFile f = read_safetensors(path);
  EXPECT_EQ(f.metadata.at("k"), "[[[[[[[[[[ \" {{{{{{{{{{ \\");
}

TEST(Safetensors, TensorViewsKeepTheMappingAlive) {
  const auto path = (fresh_temp_dir() / "alive.safetensors").string();
  const Tensor w = patterned(DType::F32, {4}, "w", 3);
  write_safetensors(path, {w});
  Tensor kept;
  {
    SafetensorsFile f = read_safetensors(path);
    kept = f.tensors.at(0);
  }
  EXPECT_EQ(bytes_of(kept), bytes_of(w));
  EXPECT_THROW(kept.mutable_data(), Error);  // a read-only view of the map
}

struct Malformed {
  const char* name;
  std::string bytes;
  const char* phrase;   // must appear in the message
  int64_t offset = -2;  // checked when not -2
};

TEST(Safetensors, MalformedFilesAreRefusedWithClearErrors) {
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  const std::vector<Malformed> cases = {
      {"empty file", "", "too short", 0},
      {"seven bytes", std::string(7, '\0'), "too short", 0},
      {"truncated header", le64(100) + std::string(12, '{'), "runs past the end of the file", 0},
      {"length beyond file", le64(1000) + "{}      ", "runs past the end of the file"},
      {"length 2^63", le64(uint64_t(1) << 63) + "{}      ", "header length 9223372036854775808"},
      {"zero-length header", le64(0), "not valid JSON"},
      {"not JSON", raw_file("hello   "), "the header is not valid JSON", 8},
      {"JSON array", raw_file("[1, 2]  "), "expected a JSON object", 8},
      {"deep nesting", raw_file(std::string(1000000, '[')), "deeper than 8 levels", 16},
      {"nesting after a string with brackets",
       raw_file(R"({"__metadata__":{"k":"]]]]]]]]]]"},"x":[[[[[[[[[[]]]]]]]]]]})"),
       "deeper than 8 levels", 54},
      {"offsets beyond data", raw_file("{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]}})",
                                       std::string(4, '\0')),
       "tensor 'a': data_offsets [0, 8] lie beyond the data section (4 bytes)", 8},
      {"begin after end", raw_file("{\"a\":{" + f32x2 + R"(,"data_offsets":[8,0]}})",
                                   std::string(8, '\0')),
       "[8, 0] begin after they end"},
      {"overlapping", raw_file("{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 +
                                   R"(,"data_offsets":[4,12]}})",
                               std::string(12, '\0')),
       "tensor 'b': data_offsets [4, 12] overlap tensor 'a'"},
      {"empty tensor inside another",
       raw_file("{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},)" +
                    R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                std::string(8, '\0')),
       "overlap"},
      {"byte length mismatch", raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                        std::string(8, '\0')),
       "hold 8 bytes, but F32 [3] needs 12"},
      {"product overflows 2^64",
       raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})"),
       "overflows"},
      {"bytes overflow",
       raw_file(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})"),
       "overflows"},
      {"dimension past 2^64",
       raw_file(R"({"a":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,0]}})"),
       "expected non-negative integers"},
      {"negative dimension",
       raw_file(R"({"a":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,0]}})"),
       "tensor 'a': negative dimension -1"},
      {"fractional dimension",
       raw_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,0]}})"),
       "expected non-negative integers"},
      {"shape not an array", raw_file(R"({"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})"),
       "'shape' is a string"},
      {"unknown dtype", raw_file(R"({"a":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}})",
                                 std::string(4, '\0')),
       "tensor 'a': unknown dtype 'F7'"},
      {"block dtype", raw_file(R"({"a":{"dtype":"Q8_0","shape":[32],"data_offsets":[0,34]}})",
                               std::string(34, '\0')),
       "unknown dtype 'Q8_0'"},
      {"invalid UTF-8 in name", raw_file("{\"a\xff\":{" + f32x2 + R"(,"data_offsets":[0,8]}})",
                                         std::string(8, '\0')),
       "invalid UTF-8 in the header", 11},
      {"overlong UTF-8", raw_file("{\"\xc0\xaf\":{" + f32x2 + R"(,"data_offsets":[0,8]}})",
                                  std::string(8, '\0')),
       "invalid UTF-8"},
      {"missing data_offsets", raw_file("{\"a\":{" + f32x2 + "}}"),
       "tensor 'a': missing key 'data_offsets'"},
      {"missing dtype", raw_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})"),
       "tensor 'a': missing key 'dtype'"},
      {"data_offsets of one", raw_file("{\"a\":{" + f32x2 + R"(,"data_offsets":[0]}})"),
       "expected [begin, end]"},
      {"metadata value not a string", raw_file(R"({"__metadata__":{"k":1}})"),
       "__metadata__ 'k' is a number, expected a string"},
      {"metadata not an object", raw_file(R"({"__metadata__":"x"})"), "__metadata__ is a string"},
      {"entry not an object", raw_file(R"({"a":5})"), "tensor 'a': entry is a number"},
      {"control characters in a name", raw_file("{\"a\\nb\":{" + f32x2 + "}}"),
       "tensor 'a\\x0ab': missing key 'data_offsets'"},
      {"megabyte-long name", raw_file("{\"" + std::string(1 << 20, 'n') + "\":5}"),
       "tensor 'nnnnnnnnnn"},
      {"duplicate tensor name",
       raw_file("{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"a":{)" + f32x2 +
                    R"(,"data_offsets":[8,16]}})",
                std::string(16, '\0')),
       "duplicate key 'a'"},
  };

  const auto dir = fresh_temp_dir();
  for (size_t i = 0; i < cases.size(); ++i) {
    const Malformed& c = cases[i];
    SCOPED_TRACE(c.name);
    const std::string path = (dir / ("case" + std::to_string(i) + ".safetensors")).string();
    write_bytes(path, c.bytes);
    try {
      read_safetensors(path);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path), std::string::npos) << what;
      EXPECT_NE(what.find(c.phrase), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      EXPECT_LT(what.size(), path.size() + 300);  // long names are cut
      if (c.offset != -2) {
        EXPECT_EQ(e.offset(), c.offset) << what;
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "wrong exception type: " << e.what();
    }
  }
}

TEST(Safetensors, DataErrorsPointAtTheTensorsBytes) {
  // Header of 56 bytes, so the data section starts at byte 64; the tensor starts 8 later.
  const std::string header = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[8,16]}} )";
  ASSERT_EQ(header.size(), 56u);
  const auto path = (fresh_temp_dir() / "mismatch.safetensors").string();
  write_bytes(path, raw_file(header, std::string(16, '\0')));
  try {
    read_safetensors(path);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.offset(), 72);
  }
}

TEST(Safetensors, WriterRefusesWhatSafetensorsCannotHold) {
  const auto dir = fresh_temp_dir();
  const auto path = (dir / "refused.safetensors").string();
  auto refused = [&](const std::vector<Tensor>& tensors, const char* phrase,
                     const std::map<std::string, std::string>& metadata = {}) {
    try {
      write_safetensors(path, tensors, metadata);
      ADD_FAILURE() << "accepted: " << phrase;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(path));
  };
  refused({Tensor::zeros(DType::Q8_0, {32}, "q")}, "Q8_0 is a block type");
  refused({Tensor::zeros(DType::Q4_1, {2, 32}, "q")}, "Q4_1 is a block type");
  refused({Tensor::zeros(DType::F32, {1}, "x"), Tensor::zeros(DType::F32, {1}, "x")},
          "used twice");
  refused({Tensor::zeros(DType::F32, {1}, "__metadata__")}, "reserved");
  refused({Tensor()}, "does not match F32 []");  // holds no bytes for its 0-d shape
  refused({Tensor::zeros(DType::F32, {1}, "bad\xff")}, "not valid UTF-8");
  refused({}, "not valid UTF-8", {{"k", "\xc3"}});
  // Nothing of a refused write is left behind, not even the temporary.
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

// Property: whatever bytes are damaged, the reader either refuses with mcw::Error or
// returns views that lie wholly inside the file. Deterministic seed, bounded count.
TEST(Safetensors, DamagedFilesAreRefusedOrStayInBounds) {
  const auto dir = fresh_temp_dir();
  const auto good_path = (dir / "good.safetensors").string();
  write_safetensors(good_path,
                    {patterned(DType::F32, {2, 3}, "w", 1), patterned(DType::I64, {}, "s", 2),
                     patterned(DType::U8, {0}, "e", 3), patterned(DType::BF16, {4}, "b", 4)},
                    {{"format", "pt"}});
  const std::string good = read_bytes(good_path);
  const auto path = (dir / "damaged.safetensors").string();
  std::mt19937 rng(12345);
  const char interesting[] = {'[', '{', '"', '\\', '-', '9', ',', ']', '}', '\0', '\xff', ' '};
  int accepted = 0, refused = 0;
  for (int round = 0; round < 600; ++round) {
    std::string bytes = good;
    const int edits = 1 + int(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      const size_t at = rng() % bytes.size();
      bytes[at] = rng() % 2 ? interesting[rng() % sizeof interesting] : char(rng());
    }
    if (rng() % 8 == 0) bytes.resize(rng() % bytes.size());
    write_bytes(path, bytes);
    try {
      const SafetensorsFile f = read_safetensors(path);
      const auto* begin = reinterpret_cast<const char*>(f.file->data());
      const auto* end = begin + f.file->size();
      for (const Tensor& t : f.tensors) {
        const auto* p = static_cast<const char*>(t.data());
        ASSERT_TRUE(p >= begin && p + t.nbytes() <= end) << "round " << round;
      }
      ++accepted;
    } catch (const Error&) {
      ++refused;
    }
  }
  // Both outcomes occur, so the damage is neither always fatal nor always harmless.
  EXPECT_GT(accepted, 0);
  EXPECT_GT(refused, 0);
}
