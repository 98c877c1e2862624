// LayerBank: compressed layers filed once and read back on demand; a candidate's forward
// from the bank equals the forward of the model its layers decode to, bit for bit.
#include <gtest/gtest.h>

#include <filesystem>

#include "compress_test_util.h"
#include "engine/compress/calibrate.h"
#include "engine/core/error.h"
#include "engine/recipe/recipe.h"
#include "engine/search/layer_bank.h"
#include "temp_files.h"

using namespace mcw;

namespace {

Recipe rtn_recipe(int bits) {
  return parse_recipe("stages:\n  - algorithm: rtn\n    bits: " + std::to_string(bits) +
                          "\n    group_size: 32\n",
                      "rtn.yaml");
}

struct Banked {
  LlamaModel base = test::random_llama(test::compress_config(2), 5);
  CompressionResult w4 = compress_llama(base, rtn_recipe(4), {}, {});
  CompressionResult w2 = compress_llama(base, rtn_recipe(2), {}, {});
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (const CompressedLayer& l : w4.layers) n.push_back(l.tensor.name);
    return n;
  }
};

}  // namespace

TEST(LayerBank, CandidateForwardEqualsTheDecodedModel) {
  Banked b;
  const std::vector<std::string> names = b.names();
  ASSERT_EQ(names.size(), 14u);
  const auto dir = test::fresh_temp_dir();
  {
    LayerBank bank(names, 2, dir, 0);
    const std::vector<int> all0(names.size(), 0), all1(names.size(), 1);
    bank.add(b.base, rtn_recipe(4), all0, {});
    bank.add(b.base, rtn_recipe(2), all1, {});
    EXPECT_GT(bank.file_bytes(), 0u);

    // Mixed: every other layer at 2 bits; the model those layers decode to, built by hand.
    std::vector<int> choice(names.size());
    LlamaModel decoded = b.base;
    uint64_t bits = 0, covered = 0;
    for (size_t r = 0; r < names.size(); ++r) {
      choice[r] = int(r % 2);
      const CompressionResult& from = choice[r] ? b.w2 : b.w4;
      *find_weight(decoded, names[r]) = *find_weight(const_cast<LlamaModel&>(from.model), names[r]);
      bits += from.layers[r].storage_bits;
      covered += uint64_t(from.layers[r].tensor.rows * from.layers[r].tensor.cols);
    }
    const std::vector<int32_t> tokens = test::random_tokens(24, 3);
    const int64_t V = b.base.cfg.vocab_size;
    std::vector<float> want(size_t(24 * V)), got(want.size());
    KVCache c1(b.base.cfg, 24), c2(b.base.cfg, 24);
    llama_forward(decoded, tokens, c1, want.data());
    const LlamaLinearFn linears = bank.linears(b.base, choice);
    llama_forward(b.base, tokens, c2, got.data(), nullptr, &linears);
    EXPECT_EQ(got, want);
    EXPECT_NE(got, std::vector<float>(got.size(), 0.0f));
    // The size is compress_llama's sum: the chosen layers' bits, the rest at 16.
    EXPECT_EQ(bank.storage_bits(choice, 100000), bits + 16 * (100000 - covered));
    EXPECT_EQ(bank.storage_bits(all0, b.w4.parameters), b.w4.storage_bits);
  }
  // The bank's files went with it.
  for (const auto& e : std::filesystem::directory_iterator(dir))
    ADD_FAILURE() << "left behind: " << e.path();
}

TEST(LayerBank, CacheStaysInItsBudgetAndRereadsWhatItDropped) {
  Banked b;
  const std::vector<std::string> names = b.names();
  const std::vector<int> all0(names.size(), 0);
  // Measure the largest layer first, then a cache of two of them.
  uint64_t largest = 0;
  for (const CompressedLayer& l : compress_llama(b.base, rtn_recipe(4), {}, {}).layers)
    largest = std::max(largest, memory_bytes(l.tensor));
  LayerBank bank(names, 1, test::fresh_temp_dir(), 2 * largest);
  bank.add(b.base, rtn_recipe(4), all0, {});
  EXPECT_EQ(bank.largest_layer_bytes(), largest);
  for (size_t r = 0; r < names.size(); ++r) {
    const auto t = bank.get(r, 0);
    EXPECT_EQ(t->name, names[r]);
    EXPECT_EQ(t->dequantize().to_f32(), b.w4.layers[r].tensor.dequantize().to_f32()) << names[r];
    EXPECT_LE(bank.cache_bytes_held(), 2 * largest);
  }
  EXPECT_EQ(bank.reads(), names.size());
  bank.get(names.size() - 1, 0);  // still cached
  EXPECT_EQ(bank.reads(), names.size());
  bank.get(0, 0);  // dropped long ago: read again
  EXPECT_EQ(bank.reads(), names.size() + 1);
}

TEST(LayerBank, MissingLevelsAndDamagedFilesAreRefused) {
  Banked b;
  const std::vector<std::string> names = b.names();
  const auto dir = test::fresh_temp_dir();
  LayerBank bank(names, 2, dir, 0);
  EXPECT_THROW(bank.get(0, 0), Error);  // nothing added yet
  bank.add(b.base, rtn_recipe(4), std::vector<int>(names.size(), 0), {});
  EXPECT_THROW(bank.get(0, 1), Error);
  EXPECT_THROW(bank.storage_bits(std::vector<int>(names.size(), 1), 1000), Error);
  EXPECT_THROW(bank.add(b.base, rtn_recipe(4), std::vector<int>(3, 0), {}), Error);
  // A bank file cut short (a full disk, a stray process) is an error naming it.
  for (const auto& sub : std::filesystem::directory_iterator(dir))
    for (const auto& f : std::filesystem::directory_iterator(sub.path()))
      std::filesystem::resize_file(f.path(), std::filesystem::file_size(f.path()) / 2);
  try {
    bank.get(3, 0);
    FAIL() << "a damaged bank file was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mcw-layer-bank"), std::string::npos) << e.what();
  }
}
