#include "engine/core/huge_pages.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

namespace mcw {

namespace {

bool huge_pages_on_request() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(f, mode);
  return mode.find("[madvise]") != std::string::npos || mode.find("[always]") != std::string::npos;
}

}  // namespace

std::optional<std::string> tunables_with_huge_pages(const char* current) {
  constexpr const char* kTunable = "glibc.malloc.hugetlb=1";
  if (!current || !*current) return std::string(kTunable);
  if (std::strstr(current, "glibc.malloc.hugetlb")) return std::nullopt;  // the user's say
  return std::string(current) + ":" + kTunable;
}

void restart_with_huge_page_malloc(char** argv) {
#if defined(__linux__) && defined(__GLIBC__)
  if (const char* off = std::getenv("MCW_HUGE_PAGES"); off && std::strcmp(off, "0") == 0) return;
  const std::optional<std::string> tunables = tunables_with_huge_pages(std::getenv("GLIBC_TUNABLES"));
  // Once set (by the exec below, or by the user), the variable stops a second exec.
  if (!tunables || !huge_pages_on_request()) return;
  if (setenv("GLIBC_TUNABLES", tunables->c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
#else
  (void)argv;
#endif
}

}  // namespace mcw
