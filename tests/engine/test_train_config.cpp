// `mcw train` config files: defaults, paths, and one precise error per mistake.
#include <gtest/gtest.h>

#include "engine/core/error.h"
#include "engine/train/train_config.h"

using namespace mcw;
using json = nlohmann::json;

namespace {

json minimal() {
  return json::parse(R"({
    "model": {"dim": 64, "hidden_dim": 160, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
              "seq_len": 32},
    "training": {"steps": 10, "batch": 4, "micro_batches": 2, "lr": 0.002},
    "corpus": {"dir": "fortunes"},
    "out": "/tmp/run"
  })");
}

std::string error_of(const json& doc) {
  try {
    parse_train_config(doc, "/cfg/train.json");
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), "/cfg/train.json");
    return e.message();
  }
  return "(no error)";
}

}  // namespace

TEST(TrainConfig, ParsesWithDefaultsAndResolvesPathsBesideTheFile) {
  const TrainRunConfig r = parse_train_config(minimal(), "/cfg/sub/train.json");
  EXPECT_EQ(r.model.vocab_size, 256);
  EXPECT_EQ(r.model.head_dim, 16);
  EXPECT_EQ(r.model.n_kv_heads, 2);
  EXPECT_EQ(r.model.max_seq_len, 32);
  EXPECT_TRUE(r.model.tie_embeddings);
  EXPECT_EQ(r.train.seq_len, 32);
  EXPECT_EQ(r.train.micro_batches, 2);
  EXPECT_DOUBLE_EQ(r.train.lr, 0.002);
  EXPECT_DOUBLE_EQ(r.train.min_lr, 1e-4);
  EXPECT_EQ(r.train.warmup, 1);  // steps / 10 when not given
  EXPECT_EQ(r.corpus_dir, "/cfg/sub/fortunes");
  EXPECT_EQ(r.out_dir, "/tmp/run");
  EXPECT_DOUBLE_EQ(r.eval_fraction, 0.1);
}

TEST(TrainConfig, ErrorsNameTheKey) {
  json d = minimal();
  d["training"]["lr"] = "fast";
  EXPECT_EQ(error_of(d), "key 'training.lr': expected a number, got \"fast\"");
  d = minimal();
  d["model"].erase("dim");
  EXPECT_EQ(error_of(d), "missing key 'model.dim'");
  d = minimal();
  d["training"]["stpes"] = 3;
  EXPECT_EQ(error_of(d), "unknown key 'training.stpes'");
  d = minimal();
  d["model"]["n_layers"] = 0;
  EXPECT_EQ(error_of(d), "key 'model.n_layers': expected an integer >= 1, got 0");
  d = minimal();
  d["model"]["vocab_size"] = 32000;
  EXPECT_NE(error_of(d).find("model.vocab_size"), std::string::npos);
  d = minimal();
  d["training"]["micro_batches"] = 3;
  EXPECT_NE(error_of(d).find("training.micro_batches"), std::string::npos);
  d = minimal();
  d["model"]["n_heads"] = 5;
  EXPECT_NE(error_of(d).find("model.n_heads"), std::string::npos);
  d = minimal();
  d.erase("corpus");
  EXPECT_EQ(error_of(d), "missing section 'corpus'");
  d = minimal();
  d["out"] = 3;
  EXPECT_EQ(error_of(d), "key 'out': expected a non-empty string, got 3");
  d = minimal();
  d["extra"] = true;
  EXPECT_EQ(error_of(d), "unknown key 'extra'");
}

TEST(TrainConfig, UnreadableOrInvalidFile) {
  EXPECT_THROW(parse_train_config(std::string("/nonexistent/train.json")), Error);
  const std::string p = testing::TempDir() + "mcw_bad_train.json";
  FILE* f = std::fopen(p.c_str(), "w");
  std::fputs("{\"model\": {\"dim\": 64,}", f);
  std::fclose(f);
  try {
    parse_train_config(p);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), p);
    EXPECT_NE(e.message().find("invalid JSON"), std::string::npos);
    EXPECT_GE(e.offset(), 0);
  }
  std::remove(p.c_str());
}
