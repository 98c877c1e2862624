// mcw_make_test_project DIR [NAME] [--sensitivity]: writes a tiny project for screenshots
// and manual tries; --sensitivity also fills its run store's sensitivity cache (a real
// per-layer RTN scan of the tiny model).
#include <cstdio>
#include <cstring>

#include "engine/core/error.h"
#include "test_project_maker.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [NAME]\n", argv[0]);
    return 2;
  }
  const bool sensitivity = argc > 2 && std::strcmp(argv[argc - 1], "--sensitivity") == 0;
  const int names = argc - (sensitivity ? 1 : 0);
  try {
    mcw::test::TestProjectOptions o;
    o.text_bytes = 20000;
    o.max_tokens = 8192;
    const std::string path = mcw::test::make_test_project(argv[1], names > 2 ? argv[2] : "tiny", o);
    if (sensitivity) mcw::test::write_sensitivity_cache(path, {8, 4, 3, 2});
    std::printf("%s\n", path.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
