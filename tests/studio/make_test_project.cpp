// mcw_make_test_project DIR [NAME]: writes a tiny project for screenshots and manual tries.
#include <cstdio>

#include "engine/core/error.h"
#include "test_project_maker.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [NAME]\n", argv[0]);
    return 2;
  }
  try {
    mcw::test::TestProjectOptions o;
    o.text_bytes = 20000;
    o.max_tokens = 8192;
    const std::string path = mcw::test::make_test_project(argv[1], argc > 2 ? argv[2] : "tiny", o);
    std::printf("%s\n", path.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
