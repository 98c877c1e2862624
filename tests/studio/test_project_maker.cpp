#include "test_project_maker.h"

#include <filesystem>
#include <fstream>

#include "../engine/llama_test_util.h"
#include "engine/model/llama_save.h"
#include "engine/project/project.h"

namespace mcw::test {

namespace fs = std::filesystem;

static void write_model(const std::string& path, const TestProjectOptions& o) {
  LlamaConfig c = tiny_config(4, 2, false);
  c.vocab_size = o.vocab;
  c.max_seq_len = 128;
  const LlamaModel m = random_llama(c, o.seed);
  save_llama_llama2c(m, path);
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
  p.recipes = {{"uniform-w4", "", "stages:\n  - quantize: {bits: 4, group: 32}\n"}};
  p.eval = {o.window, o.stride, o.max_tokens};
  if (o.write_model) write_model(p.model_path, o);
  std::ofstream(p.evaluation_path, std::ios::binary) << sample_text(o.text_bytes);
  const std::string file = (fs::path(dir) / (name + ".mcwproj")).string();
  save_project(p, file);
  return file;
}

}  // namespace mcw::test
