#include "test_project_maker.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "../engine/llama_test_util.h"
#include "engine/compress/compress_llama.h"
#include "engine/eval/perplexity.h"
#include "engine/model/llama_save.h"
#include "engine/project/project.h"
#include "engine/runs/fingerprint.h"
#include "engine/runs/run_store.h"

namespace mcw::test {

namespace fs = std::filesystem;

// A llama2.c tokenizer.bin beside the model, so that runs (which tokenize with the model's
// own tokenizer) work: <unk>, <s>, </s>, then byte pieces <0x00>.. for the remaining ids
// (plain ASCII text encodes as bytes).
static void write_tokenizer(const std::string& path, int vocab) {
  std::ofstream out(path, std::ios::binary);
  auto put_i32 = [&](int32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  auto put_f32 = [&](float v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  put_i32(6);  // max_token_length
  for (int i = 0; i < vocab; ++i) {
    std::string piece;
    if (i == 0) piece = "<unk>";
    else if (i == 1) piece = "<s>";
    else if (i == 2) piece = "</s>";
    else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", (i - 3) & 0xff);
      piece = buf;
    }
    put_f32(0);
    put_i32(int32_t(piece.size()));
    out.write(piece.data(), std::streamsize(piece.size()));
  }
}

static void write_model(const std::string& path, const TestProjectOptions& o) {
  LlamaConfig c = tiny_config(4, 2, false);
  c.vocab_size = o.vocab;
  c.hidden_dim = 64;  // divisible by the recipes' groups of 32
  c.max_seq_len = 128;
  const LlamaModel m = random_llama(c, o.seed);
  save_llama_llama2c(m, path);
  write_tokenizer((fs::path(path).parent_path() / "tokenizer.bin").string(), o.vocab);
}

static std::string sample_text(int64_t n) {
  static const char* kWords[] = {"the ", "model ", "compresses ", "weights ", "into ",
                                 "four ", "bits ", "and ", "keeps ", "its ", "accuracy. ",
                                 "A ", "small ", "network ", "runs ", "fast.\n"};
  std::string s;
  uint32_t x = 12345;
  while (int64_t(s.size()) < n) {
    x = x * 1103515245u + 12345u;
    s += kWords[(x >> 16) % (sizeof(kWords) / sizeof(kWords[0]))];
  }
  s.resize(size_t(n));
  return s;
}

std::string make_test_project(const std::string& dir, const std::string& name,
                              const TestProjectOptions& o) {
  fs::create_directories(fs::path(dir) / "models");
  fs::create_directories(fs::path(dir) / "data");
  Project p;
  p.name = name;
  p.model_path = (fs::path(dir) / "models" / "tiny.bin").string();
  p.evaluation_path = (fs::path(dir) / "data" / "eval.txt").string();
  auto rtn = [](int bits, int group) {
    return "stages:\n  - algorithm: rtn\n    bits: " + std::to_string(bits) +
           "\n    group_size: " + std::to_string(group) + "\n";
  };
  p.recipes = {{"uniform-w4", "", rtn(4, 32)},
               {"rtn-w8", "", rtn(8, 0)},
               {"rtn-w3", "", rtn(3, 32)},
               {"rtn-w2", "", rtn(2, 32)}};
  p.eval = {o.window, o.stride, o.max_tokens};
  if (o.write_model) write_model(p.model_path, o);
  std::ofstream(p.evaluation_path, std::ios::binary) << sample_text(o.text_bytes);
  const std::string file = (fs::path(dir) / (name + ".mcwproj")).string();
  save_project(p, file);
  return file;
}

int write_sensitivity_cache(const std::string& project_file, const std::vector<int>& bits,
                            int64_t tokens) {
  const Project p = load_project(project_file);
  const ModelFile file = open_model_file(p.model_path);
  const LlamaModel base = load_llama(file);
  std::ifstream in(p.evaluation_path, std::ios::binary);
  std::vector<int32_t> ids;  // byte tokens: any fixed tokens do, the panel shows the cache
  for (char ch; int64_t(ids.size()) < tokens && in.get(ch);)
    ids.push_back(int32_t(static_cast<unsigned char>(ch)));
  EvalOptions eo;
  eo.window = std::min(p.eval.window, base.cfg.max_seq_len);
  eo.stride = std::min(p.eval.stride, eo.window);
  std::vector<SensitivityEntry> entries;
  for (const auto& [name, t] : base.named_tensors()) {
    if (!name.ends_with("_proj.weight")) continue;
    for (int b : bits) {
      const Recipe r = parse_recipe("stages:\n  - algorithm: rtn\n    bits: " + std::to_string(b) +
                                        "\n    group_size: 0\n    targets: [" + name + "]\n",
                                    "sensitivity");
      const CompressionResult c = compress_llama(base, r, {}, CompressOptions{});
      const EvalResult e = evaluate(c.model, ids, eo, &base);
      const std::string setting = "rtn-w" + std::to_string(b);
      entries.push_back({name, setting, "kl", e.kl});
      entries.push_back({name, setting, "perplexity", e.perplexity});
    }
  }
  const std::string db =
      p.database_path.empty() ? default_database_path(project_file, p.name) : p.database_path;
  RunStore::open(db)->put_sensitivities(model_fingerprint(file), entries);
  return int(entries.size());
}

}  // namespace mcw::test
