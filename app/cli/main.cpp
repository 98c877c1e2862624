#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc > 1 && !std::strcmp(argv[1], "--version")) {
    std::printf("mcw %s\n", MCW_VERSION);
    return 0;
  }
  std::fprintf(stderr, "usage: mcw <command> [args]\n");
  return 1;
}
