// The streaming safetensors writer: pieces of any size that cut across tensors make the file
// read_safetensors reads, and a stream shorter than its header never becomes a file.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/core/error.h"
#include "engine/io/model_file.h"
#include "engine/io/safetensors_stream.h"
#include "tests/engine/temp_files.h"

using namespace mcw;
using mcw::test::fresh_temp_dir;
namespace fs = std::filesystem;

TEST(SafetensorsStream, WritesWhatReadSafetensorsReadsAndRefusesAShortStream) {
  const fs::path dir = fresh_temp_dir();
  const std::vector<SafetensorsEntry> entries = {{"a", DType::BF16, {2, 3}},
                                                 {"b", DType::F32, {2}}};
  {
    SafetensorsStreamWriter w((dir / "short.safetensors").string(), entries);
    const uint16_t six[6] = {1, 2, 3, 4, 5, 6};
    w.write(six, sizeof six);
    EXPECT_THROW(w.commit(), Error);
  }
  EXPECT_TRUE(fs::is_empty(dir));  // the temporary went with the writer
  SafetensorsStreamWriter w((dir / "m.safetensors").string(), entries, {{"format", "pt"}});
  const uint16_t a[6] = {0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0};  // 1..6 in bf16
  const float b[2] = {7, 8};
  w.write(a, 4);  // in pieces that cut across the tensors
  w.write(reinterpret_cast<const char*>(a) + 4, 8);
  w.write(b, sizeof b);
  EXPECT_THROW(w.write(b, 1), Error);
  w.commit();
  const ModelFile f = open_model_file((dir / "m.safetensors").string());
  ASSERT_EQ(f.tensors.size(), 2u);
  float got[6];
  f.find("a")->to_f32(got, 0, 6);
  EXPECT_EQ(got[5], 6.0f);
  f.find("b")->to_f32(got, 0, 2);
  EXPECT_EQ(got[1], 8.0f);
  EXPECT_EQ(f.metadata.at("format"), "pt");
}
