// Hostile and broken GGUF files: each is refused with an mcw::Error naming the file, the
// byte offset of the problem and a phrase saying what is wrong; none crashes, hangs or
// allocates from an unchecked count. Ends with a deterministic mutation loop.
#include <gtest/gtest.h>

#include <cstring>

#include "engine/core/error.h"
#include "engine/io/gguf.h"
#include "gguf_test_util.h"

using namespace mcw;
using mcw::test::Bytes;

namespace {

constexpr uint32_t kString = 8, kArray = 9, kU32 = 4, kU8 = 0;

struct Case {
  std::string name;
  std::vector<uint8_t> bytes;
  std::string phrase;
  int64_t offset;  // expected byte offset of the error; -2 when not checked
};

// One key/value: key, u32 type, then the value's bytes.
Bytes kv_u32(Bytes b, std::string_view key, uint32_t v) {
  return std::move(b.str(key).u32(kU32).u32(v));
}

// A valid file to start from: 2 key/values, 2 F32 tensors of 8 values, alignment 32.
Bytes valid_file(uint64_t offset_b = 32) {
  Bytes b = Bytes::header(3, 2, 2);
  b.str("general.architecture").u32(kString).str("llama");
  b.str("a").u32(kArray).u32(kU32).u64(3).u32(1).u32(2).u32(3);
  b.tensor_info("x", {8}, 0, 0).tensor_info("y", {8}, 0, offset_b);
  b.pad(32).zeros(64);
  return b;
}

// Header with one tensor of the given infos, no key/values, data of `data_bytes`.
Bytes one_tensor(std::vector<uint64_t> ne, uint32_t type, uint64_t offset,
                 size_t data_bytes = 64) {
  Bytes b = Bytes::header(3, 1, 0);
  b.tensor_info("t", ne, type, offset);
  b.pad(32).zeros(data_bytes);
  return b;
}

void expect_refused(const Case& c) {
  SCOPED_TRACE(c.name);
  const std::string path = test::scratch_path("malformed.gguf");
  test::write_bytes(path, c.bytes);
  try {
    read_gguf(path);
    ADD_FAILURE() << "accepted; expected an error containing: " << c.phrase;
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    EXPECT_NE(e.message().find(c.phrase), std::string::npos) << e.what();
    EXPECT_EQ(e.message().find('\n'), std::string::npos);
    if (c.offset != -2) {
      EXPECT_EQ(e.offset(), c.offset) << e.what();
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an mcw::Error: " << e.what();
  }
}

}  // namespace

TEST(GgufMalformed, ValidBaseFileReads) {
  const std::string path = test::scratch_path("valid_base.gguf");
  test::write_bytes(path, valid_file().b);
  const GGUFFile g = read_gguf(path);
  EXPECT_EQ(g.tensors.size(), 2u);
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
}

TEST(GgufMalformed, EachIsRefusedClearly) {
  std::vector<Case> cases;
  auto add = [&](std::string name, Bytes b, std::string phrase, int64_t offset = -2) {
    cases.push_back({std::move(name), std::move(b.b), std::move(phrase), offset});
  };
  add("empty file", Bytes(), "empty", 0);
  add("bad magic", std::move(Bytes().raw("GGUX").u32(3).u64(0).u64(0)), "bad magic", 0);
  add("version 1", Bytes::header(1, 0, 0), "version 1", 4);
  add("version 99", Bytes::header(99, 0, 0), "version 99", 4);
  add("big-endian", std::move(Bytes().raw("GGUF").u8(0).u8(0).u8(0).u8(3).u64(0).u64(0)),
      "big-endian", 4);
  add("tensor_count 2^60", Bytes::header(3, uint64_t(1) << 60, 0), "tensor_count", 8);
  add("kv_count 2^60", Bytes::header(3, 0, uint64_t(1) << 60), "kv_count", 16);
  {
    Bytes b = Bytes::header(3, 0, 1);
    b.u64(uint64_t(1) << 62).raw("key").zeros(16);
    add("key length 2^62", b, "longer than the rest of the file", 24);
  }
  {
    Bytes b = Bytes::header(3, 0, 1);
    b.str("k").u32(kString).u64(100).raw("short");
    add("string past the end", b, "longer than the rest of the file", 24 + 9 + 4);
  }
  {
    Bytes b = Bytes::header(3, 0, 1);
    b.str("k").u32(kArray).u32(kU8).u64(uint64_t(1) << 60).zeros(16);
    add("array count 2^60", b, "array length", 24 + 9 + 4 + 4);
  }
  {
    Bytes b = Bytes::header(3, 0, 1);
    b.str("k").u32(kArray).u32(kString).u64(1000).str("a");
    add("string array count past the file", b, "can hold at most", 24 + 9 + 4 + 4);
  }
  {
    Bytes b = Bytes::header(3, 0, 1);
    b.str("k").u32(13).u32(0);
    add("unknown value type 13", b, "unknown value type 13", 24 + 9);
  }
  {
    Bytes b = Bytes::header(3, 0, 1);
    b.str("k").u32(kArray);
    for (int i = 0; i < 1000; ++i) b.u32(kArray).u64(1);
    b.u32(kU8).u64(0);
    add("arrays nested 1000 deep", b, "nests arrays more than 8 deep", 24 + 9 + 4 + 8 * 12);
  }
  {
    Bytes b = Bytes::header(3, 0, 1);
    b.str("k").u32(7).u8(2);
    add("bool value 2", b, "must be 0 or 1", 24 + 9 + 4);
  }
  for (uint32_t a : {0u, 3u}) {
    Bytes b = kv_u32(Bytes::header(3, 1, 1), "general.alignment", a);
    b.tensor_info("t", {8}, 0, 0).pad(32).zeros(32);
    add("alignment " + std::to_string(a), b, "non-zero power of two", 24);
  }
  {
    Bytes b = Bytes::header(3, 0, 1);
    b.str("general.alignment").u32(kString).str("32");
    add("alignment as a string", b, "must be a UINT32", 24);
  }
  add("n_dims 5", one_tensor({1, 1, 1, 1, 2}, 0, 0), "5 dimensions", 24 + 9);
  add("ne product overflow", one_tensor({1u << 31, 1u << 31, 1u << 31, 8}, 0, 0),
      "element count overflows", 24 + 9);
  add("dimension past int64", one_tensor({uint64_t(1) << 63}, 0, 0), "signed 64-bit range",
      24 + 9 + 4);
  add("offset beyond the data", one_tensor({8}, 0, 64), "extends past the end", 24 + 9 + 4 + 8 + 4);
  add("data cut short", one_tensor({8}, 0, 0, 31), "extends past the end", 24 + 9 + 4 + 8 + 4);
  add("offset not aligned", one_tensor({8}, 0, 16), "not a multiple of the alignment",
      24 + 9 + 4 + 8 + 4);
  add("overlapping tensors", valid_file(0), "overlap", -2);
  // Types MCW lists without decoding still have their extent checked (IQ2_XXS: 66 bytes).
  add("IQ2_XXS data cut short", one_tensor({256}, 16, 0, 64), "extends past the end",
      24 + 9 + 4 + 8 + 4);
  add("IQ2_XXS rows not whole blocks", one_tensor({128}, 16, 0), "not whole IQ2_XXS blocks", 24 + 9);
  add("Q4_K rows not whole super-blocks", one_tensor({32, 8}, 12, 0), "not whole Q4_K blocks", 24 + 9);
  add("Q8_0 rows not whole blocks", one_tensor({16, 2}, 8, 0), "not whole Q8_0 blocks",
      24 + 9);
  {
    Bytes b = kv_u32(kv_u32(Bytes::header(3, 0, 2), "k", 1), "k", 2);
    add("duplicate key", b, "key 'k' appears twice", 24 + 9 + 8);
  }
  {
    Bytes b = Bytes::header(3, 2, 0);
    b.tensor_info("t", {8}, 0, 0).tensor_info("t", {8}, 0, 32).pad(32).zeros(64);
    add("duplicate tensor name", b, "tensor 't' appears twice", 24 + 33);
  }
  {
    Bytes b = Bytes::header(3, 0, 1);
    b.str("bad\xC3(").u32(kU32).u32(1);
    add("invalid UTF-8 key", b, "not valid UTF-8", 24);
  }
  {
    Bytes b = Bytes::header(3, 1, 0);
    b.str("\xFF").u32(1).u64(8).u32(0).u64(0).pad(32).zeros(32);
    add("invalid UTF-8 tensor name", b, "not valid UTF-8", 24);
  }
  {
    Bytes b = Bytes::header(3, 1, 0);
    b.tensor_info("t", {8}, 0, 0);  // ends right after the infos: no data section at all
    add("no data section", b, "ends before the tensor data section", -2);
  }
  for (const Case& c : cases) expect_refused(c);
}

TEST(GgufMalformed, TruncatedInsideEachSection) {
  const Bytes full = valid_file();
  // Offsets of the base file: header 24; kv1 key 8+20, type 4, value 8+5 (ends 69);
  // kv2 key 8+1, type 4, elem type 4, count 8, items 12 (ends 106); tensor x 8+1+4+8+4+8
  // (ends 139); tensor y (ends 172); padding to 192; data 64 (ends 256).
  ASSERT_EQ(full.size(), 256u);
  const struct { size_t cut; const char* phrase; } cuts[] = {
      {2, "truncated"},  {6, "truncated"},  {12, "truncated"},  {20, "truncated"},
      {28, "truncated"},                                         // key length
      {40, "truncated"},                                         // key bytes
      {54, "truncated"},                                         // value type
      {60, "truncated"},                                         // string value length
      {66, "longer than the rest of the file"},                  // string value bytes
      {80, "truncated"},                                         // kv 2's value type
      {84, "truncated"},                                         // array element type
      {90, "truncated"},                                         // array count
      {100, "truncated"},                                        // array items
      {110, "truncated"},                                        // tensor name length
      {114, "truncated"},                                        // tensor name bytes
      {118, "truncated"},                                        // n_dims
      {125, "truncated"},                                        // ne
      {129, "truncated"},                                        // ggml type
      {135, "truncated"},                                        // offset
      {150, "truncated"},                                        // second tensor info
      {180, "ends before the tensor data section"},              // padding
      {200, "extends past the end of the data section"},         // first tensor's data
      {250, "extends past the end of the data section"},         // second tensor's data
  };
  for (const auto& c : cuts) {
    Bytes b = full;
    b.b.resize(c.cut);
    expect_refused({"cut at " + std::to_string(c.cut), b.b, c.phrase, -2});
  }
}

// Every byte before the data section gets several replacement values, and the file is
// cut at every length; each result must either read or throw mcw::Error.
TEST(GgufFuzz, MutatedAndTruncatedFilesNeverCrash) {
  const std::string path = test::scratch_path("fuzz.gguf");
  Bytes base = Bytes::header(3, 2, 4);
  base.str("general.architecture").u32(kString).str("llama");
  base.str("t.tokens").u32(kArray).u32(kString).u64(3).str("a").str("bc").str("");
  base.str("t.nested").u32(kArray).u32(kArray).u64(2);
  base.u32(kU8).u64(2).u8(1).u8(2).u32(7).u64(1).u8(1);
  base.str("t.f").u32(6).f32(0.5f);
  base.tensor_info("w", {32, 2}, 8, 0).tensor_info("b", {4}, 0, 96);
  base.pad(32);
  const size_t header_end = base.size();
  base.zeros(128);

  size_t accepted = 0, refused = 0;
  auto attempt = [&](const std::vector<uint8_t>& bytes) {
    test::write_bytes(path, bytes);
    try {
      const ModelFile m = read_gguf_model(path);
      (void)m.hparams.dump();
      for (const Tensor& t : m.tensors)
        if (t.numel() > 0) (void)t.to_f32();  // every byte of a view must be readable
      ++accepted;
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not an mcw::Error: " << e.what();
    }
  };
  attempt(base.b);
  ASSERT_EQ(accepted, 1u);
  for (size_t i = 0; i < header_end; ++i) {
    const uint8_t orig = base.b[i];
    for (uint8_t v : {uint8_t(0), uint8_t(0xFF), uint8_t(0x80), uint8_t(orig ^ 1),
                      uint8_t(orig + 1), uint8_t(orig ^ 0x40)}) {
      if (v == orig) continue;
      std::vector<uint8_t> m = base.b;
      m[i] = v;
      attempt(m);
    }
  }
  for (size_t n = 0; n < base.size(); ++n)
    attempt(std::vector<uint8_t>(base.b.begin(), base.b.begin() + std::ptrdiff_t(n)));
  EXPECT_GT(refused, header_end);  // most mutations of the structure are caught
  EXPECT_GT(accepted, 1u);         // and some (in string bytes, say) are harmless
}

// A type MCW does not decode is listed (dtype Packed, not readable) and only reading it
// fails, naming the file, the tensor and the type; the other tensors read as usual.
TEST(GgufMalformed, UnreadableTypesAreListedAndOnlyTheirReadsRefused) {
  Bytes b = Bytes::header(3, 3, 0);
  b.tensor_info("iq2", {256}, 16, 0).tensor_info("f", {8}, 0, 96).tensor_info("odd", {8}, 99, 0);
  b.pad(32).zeros(96);
  for (int i = 0; i < 8; ++i) b.f32(float(i));
  const std::string path = test::scratch_path("unreadable.gguf");
  test::write_bytes(path, b.b);
  const GGUFFile f = read_gguf(path);
  ASSERT_EQ(f.tensors.size(), 3u);
  const Tensor& iq2 = f.tensors[0];
  EXPECT_EQ(iq2.dtype(), DType::Packed);
  EXPECT_FALSE(iq2.readable());
  EXPECT_EQ(iq2.nbytes(), 66u);
  EXPECT_EQ(iq2.decoder()->describe(), "type IQ2_XXS (16), not read by MCW");
  try {
    (void)iq2.to_f32();
    ADD_FAILURE() << "read an IQ2_XXS tensor";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(e.message().find("tensor 'iq2' has type IQ2_XXS (16), which MCW cannot read yet"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(f.tensors[1].readable());
  EXPECT_EQ(f.tensors[1].to_f32(), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_FALSE(f.tensors[2].readable());
  EXPECT_EQ(f.tensors[2].decoder()->describe(), "unknown ggml type 99, not read by MCW");
  // An unknown type takes no bytes, so its shape is unchecked: reading it whole must fail
  // on the type, not try to allocate the shape (a fuzzer find).
  Bytes big = Bytes::header(3, 1, 0);
  big.tensor_info("huge", {uint64_t(1) << 20, uint64_t(1) << 20}, 99, 0).pad(32);
  test::write_bytes(path, big.b);
  const GGUFFile h = read_gguf(path);
  EXPECT_THROW((void)h.tensors[0].to_f32(), Error);
  EXPECT_THROW((void)h.tensors[0].f32_copy(), Error);
}
