// Transparent huge pages for the heap. Compression allocates and frees buffers of tens to
// hundreds of MiB for every layer (its f32 copy, XᵀX, the working copies of GPTQ), and
// glibc maps each such buffer afresh: every 4 KiB page then costs a page fault, which on
// virtual machines runs to ~20 µs (1 GiB: ~5 s measured on the 2-core CI machine, about
// half of a whole compression run). glibc's malloc asks the kernel for 2 MiB pages when
// the tunable glibc.malloc.hugetlb=1 is set, cutting the faults 512-fold. Tunables are read
// when a process starts, so mcw and mcw-studio re-execute themselves once with it set.
// MCW_HUGE_PAGES=0 in the environment turns this off.
#pragma once
#include <optional>
#include <string>

namespace mcw {

// The GLIBC_TUNABLES value to run with, given the current one (null when unset), or
// nothing when it already says how malloc should use huge pages.
std::optional<std::string> tunables_with_huge_pages(const char* current);

// Called first thing in main(): on Linux with glibc, when the kernel offers transparent
// huge pages on request ("madvise" or "always" in /sys/kernel/mm/transparent_hugepage/
// enabled) and neither MCW_HUGE_PAGES=0 nor a hugetlb tunable is set, sets the tunable and
// re-executes /proc/self/exe with the same arguments (same process id). Returns when it
// does nothing, or when the exec fails (the process then runs with glibc's defaults).
void restart_with_huge_page_malloc(char** argv);

}  // namespace mcw
