// Tests that measure the process's own memory (RSS, anonymous pages, the heap through
// malloc's statistics) mean nothing under AddressSanitizer, whose allocator keeps freed
// blocks in quarantine and serves the heap itself: they skip there (the asan preset).
#pragma once
#include <gtest/gtest.h>

#if defined(__SANITIZE_ADDRESS__)
#define MCW_SKIP_UNDER_ASAN() GTEST_SKIP() << "memory figures are AddressSanitizer's under ASan"
#else
#define MCW_SKIP_UNDER_ASAN() (void)0
#endif
