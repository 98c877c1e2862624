// The process's memory as /proc reports it, and the sampler that catches the anonymous
// peak the kernel does not keep.
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "sanitizer_skip.h"
#include "engine/core/huge_pages.h"
#include "engine/core/memory_usage.h"

using namespace mcw;

TEST(MemoryUsage, ReadsPositiveValuesAndAPeakAtLeastTheCurrent) {
  const MemoryUsage u = read_memory_usage();
  EXPECT_GT(u.resident, 0u);
  EXPECT_GT(u.anonymous, 0u);
  EXPECT_GT(u.file, 0u);  // the executable's own code
  EXPECT_GE(u.peak_resident, u.resident);
  EXPECT_LE(u.anonymous + u.file, u.resident + (1u << 20));  // RssShmem makes up the rest
  EXPECT_GT(memory_available(), uint64_t(16) << 20);
}

TEST(MemoryUsage, SamplerSeesATouchedAllocationAfterItIsFreed) {
  MCW_SKIP_UNDER_ASAN();
  constexpr size_t kBytes = size_t(200) << 20;
  PeakMemorySampler sampler(std::chrono::milliseconds(10));
  const uint64_t before = read_memory_usage().anonymous;
  {
    // malloc'd and touched page by page: untouched pages would not be resident.
    char* p = static_cast<char*>(std::malloc(kBytes));
    ASSERT_NE(p, nullptr);
    for (size_t i = 0; i < kBytes; i += 4096) reinterpret_cast<volatile char*>(p)[i] = char(i);
    // Two background samples while it is held, however loaded the machine is.
    const uint64_t seen = sampler.samples();
    for (int i = 0; i < 1000 && sampler.samples() < seen + 2; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::free(p);  // a block this large is unmapped at once
  }
  EXPECT_LT(read_memory_usage().anonymous, before + kBytes / 2);
  EXPECT_GE(sampler.peak_anonymous(), before + kBytes * 9 / 10);
  sampler.stop();
  sampler.stop();  // idempotent
}

// The glibc tunable mcw restarts with (engine/core/huge_pages.h): added to what is set,
// never over a hugetlb setting the user chose.
TEST(HugePages, TunablesAddHugetlbOnlyWhenUnset) {
  EXPECT_EQ(mcw::tunables_with_huge_pages(nullptr), "glibc.malloc.hugetlb=1");
  EXPECT_EQ(mcw::tunables_with_huge_pages(""), "glibc.malloc.hugetlb=1");
  EXPECT_EQ(mcw::tunables_with_huge_pages("glibc.malloc.check=3"),
            "glibc.malloc.check=3:glibc.malloc.hugetlb=1");
  EXPECT_EQ(mcw::tunables_with_huge_pages("glibc.malloc.hugetlb=0"), std::nullopt);
  EXPECT_EQ(mcw::tunables_with_huge_pages("glibc.malloc.check=3:glibc.malloc.hugetlb=2"),
            std::nullopt);
}
