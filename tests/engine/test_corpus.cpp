// Fortune corpus: entry parsing, directory rules, and the seeded held-out split.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "engine/core/error.h"
#include "engine/train/corpus.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("mcw_corpus_" + std::to_string(::getpid()) + "_" +
            testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
};

std::vector<std::string> numbered(int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back("entry " + std::to_string(i));
  return v;
}

}  // namespace

TEST(CorpusParse, SplitsOnLinesThatAreExactlyPercent) {
  const std::string text =
      "First.\n%\n\nSecond, line one\n\nline three\n\n%\r\n 50% off\n%%\n% not a separator\n"
      "%\n%\n  \n%\nCRLF\r\nentry\r\n%\nlast without newline";
  const auto e = split_fortune_entries(text);
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e[0], "First.");
  EXPECT_EQ(e[1], "Second, line one\n\nline three");  // inner blank line kept
  EXPECT_EQ(e[2], " 50% off\n%%\n% not a separator");
  EXPECT_EQ(e[3], "CRLF\nentry");
  EXPECT_EQ(e[4], "last without newline");
  EXPECT_TRUE(split_fortune_entries("%\n%\n\n").empty());
}

TEST(CorpusDir, ReadsTextFilesAndSkipsIndexesLinksAndSubdirectories) {
  TempDir d;
  d.write("b", "bee one\n%\nbee two\n%\n");
  d.write("a", "ay\n%\n");
  d.write("a.dat", std::string("\0\0\0\2binary index", 16));
  fs::create_symlink("a", d.path / "a.u8");
  fs::create_symlink("b", d.path / "c-link-to-b");  // same file under another name
  d.write(".hidden", "secret\n%\n");
  fs::create_directories(d.path / "off");
  d.write("off/rude", "offensive\n%\n");
  EXPECT_EQ(read_fortune_entries(d.path.string()),
            (std::vector<std::string>{"ay", "bee one", "bee two"}));
  EXPECT_EQ(read_fortune_entries(d.path.string(), /*include_subdirs=*/true),
            (std::vector<std::string>{"ay", "bee one", "bee two", "offensive"}));
}

TEST(CorpusDir, ClearErrorsForMissingEmptyOrBinary) {
  TempDir d;
  const std::string missing = (d.path / "nope").string();
  try {
    read_fortune_entries(missing);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), missing);
    EXPECT_NE(e.message().find("does not exist"), std::string::npos);
  }
  EXPECT_THROW(read_fortune_entries(d.path.string()), Error);  // empty
  d.write("only.dat", "x");
  EXPECT_THROW(read_fortune_entries(d.path.string()), Error);  // nothing but indexes
  d.write("blob", std::string("text\0more", 9));
  try {
    read_fortune_entries(d.path.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.offset(), 4);
  }
  d.write("file", "x\n");
  EXPECT_THROW(read_fortune_entries((d.path / "file").string()), Error);  // not a directory
}

TEST(CorpusSplit, HoldsOutTenPercentDisjointAndCoveringAll) {
  const auto all = numbered(95);
  const CorpusSplit s = split_corpus(all, 0.1, 7);
  EXPECT_EQ(s.eval.size(), 10u);  // round(9.5)
  EXPECT_EQ(s.train.size(), 85u);
  std::vector<std::string> merged = s.train;
  merged.insert(merged.end(), s.eval.begin(), s.eval.end());
  std::sort(merged.begin(), merged.end());
  std::vector<std::string> sorted_all = all;
  std::sort(sorted_all.begin(), sorted_all.end());
  EXPECT_EQ(merged, sorted_all);  // every entry exactly once: disjoint and covering
  EXPECT_NE(s.train, std::vector<std::string>(all.begin() + 10, all.end()));  // shuffled
  // The joined texts hold the same entries with the separator between them.
  EXPECT_EQ(s.eval_text.substr(0, s.eval[0].size() + kEntrySeparator.size()),
            s.eval[0] + std::string(kEntrySeparator));
  EXPECT_EQ(std::count(s.train_text.begin(), s.train_text.end(), '%'), 84);
}

TEST(CorpusSplit, DeterministicForASeed) {
  const auto all = numbered(200);
  const CorpusSplit a = split_corpus(all, 0.1, 42), b = split_corpus(all, 0.1, 42);
  EXPECT_EQ(a.eval, b.eval);
  EXPECT_EQ(a.train, b.train);
  EXPECT_NE(split_corpus(all, 0.1, 43).eval, a.eval);
  EXPECT_EQ(split_corpus(numbered(3), 0.1, 1).eval.size(), 1u);  // at least one held out
  EXPECT_TRUE(split_corpus(numbered(3), 0.0, 1).eval.empty());
  EXPECT_THROW(split_corpus(all, 1.0, 1), Error);
  EXPECT_THROW(split_corpus(all, -0.1, 1), Error);
}

TEST(CorpusFortunes, DebianPackageWhenInstalled) {
  const std::string dir = "/usr/share/games/fortunes";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " is not installed";
  const CorpusSplit s = load_fortune_corpus(dir, 0.1, 1);
  const size_t n = s.train.size() + s.eval.size();
  EXPECT_GT(n, 1000u);
  EXPECT_NEAR(double(s.eval.size()), 0.1 * double(n), 0.5);
  for (const auto* part : {&s.train, &s.eval})
    for (const std::string& e : *part) {
      ASSERT_FALSE(e.empty());
      ASSERT_EQ(e.find("\n%\n"), std::string::npos) << e;
      ASSERT_NE(e.front(), '\n');
    }
}
