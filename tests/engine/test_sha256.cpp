// SHA-256 against the FIPS 180-4 example vectors, incremental hashing against one-shot,
// and file hashing against coreutils' sha256sum where it is installed.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "engine/core/error.h"
#include "engine/core/sha256.h"
#include "temp_files.h"

using namespace mcw;

TEST(Sha256, FipsExampleVectors) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalEqualsOneShotAtEverySplit) {
  std::mt19937 rng(7);
  std::string data(300, '\0');
  for (char& c : data) c = char(rng());
  const std::string whole = sha256_hex(data);
  for (size_t a = 0; a <= data.size(); a += 7) {
    for (size_t b = a; b <= data.size(); b += 31) {
      Sha256 h;
      h.update(data.substr(0, a));
      h.update(data.substr(a, b - a));
      h.update(data.substr(b));
      ASSERT_EQ(to_hex(h.finish()), whole) << a << " " << b;
    }
  }
  // Lengths around the padding boundary (55, 56, 64 bytes) differ from each other.
  EXPECT_NE(sha256_hex(std::string(55, 'x')), sha256_hex(std::string(56, 'x')));
  Sha256 reused;  // finish() resets
  reused.update("abc");
  reused.finish();
  reused.update("abc");
  EXPECT_EQ(to_hex(reused.finish()), sha256_hex("abc"));
}

TEST(Sha256, FileMatchesSha256sum) {
  const auto dir = test::fresh_temp_dir();
  std::mt19937 rng(3);
  std::string data((1 << 20) + 123, '\0');  // crosses the reader's 1 MiB chunk
  for (char& c : data) c = char(rng());
  const auto path = dir / "blob.bin";
  test::write_bytes(path, data);
  const FileHash h = sha256_file(path.string());
  EXPECT_EQ(h.bytes, data.size());
  EXPECT_EQ(h.sha256, sha256_hex(data));
  if (FILE* p = popen(("sha256sum " + path.string() + " 2>/dev/null").c_str(), "r")) {
    char buf[65] = {};
    const size_t n = fread(buf, 1, 64, p);
    pclose(p);
    if (n == 64) {
      EXPECT_EQ(h.sha256, std::string(buf, 64));
    }
  }
  EXPECT_THROW(sha256_file((dir / "missing.bin").string()), Error);
}
