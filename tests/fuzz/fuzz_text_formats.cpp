// Text formats from strangers: recipes (YAML or JSON, parsed and checked against the
// algorithm schemas), project files, tokenizer.json. One source, one target per kind
// (MCW_FUZZ_FORMAT): recipe, project, tokenizer.
#include <filesystem>

#include "engine/core/error.h"
#include "engine/model/bpe_tokenizer.h"
#include "engine/project/project.h"
#include "engine/recipe/recipe.h"
#include "fuzz_target.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {
constexpr const char* kFormat = MCW_FUZZ_FORMAT;

std::vector<std::string> files_in(const std::string& dir, const std::string& ext) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ext) out.push_back(fuzz::read_bytes(e.path().string()));
  return out;
}
}  // namespace

std::vector<std::string> fuzz_seeds() {
  const std::string f = kFormat, src = MCW_SOURCE_DIR;
  if (f == "recipe") {
    auto s = files_in(src + "/assets/recipes", ".yaml");
    s.push_back(R"({"name": "j", "stages": [{"algorithm": "wanda", "sparsity": 0.3, "targets": ["re:mlp"]}]})");
    return s;
  }
  if (f == "project") return files_in(src + "/projects", ".mcwproj");
  return {fuzz::read_bytes(src + "/assets/models/fortunes-1m/tokenizer.json")};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string f = kFormat;
  const std::string text(reinterpret_cast<const char*>(data), size);
  MCW_FUZZ_BODY({
    if (f == "recipe") {
      const Recipe r = parse_recipe(text, "fuzz.yaml");
      (void)recipe_to_yaml(r);
    } else if (f == "project") {
      const Project p = load_project(fuzz::write_scratch("fuzz.mcwproj", text));
      (void)check_project(p);
    } else {
      const auto tok = BpeTokenizer::from_file(fuzz::write_scratch("tokenizer.json", text));
      const auto ids = tok->encode("Hello, wörld! 12 345\n\ttabs  and   spaces", true);
      (void)tok->decode(ids);
    }
  })
}
