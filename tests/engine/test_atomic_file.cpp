// AtomicFile replaces plain files only: a rename over a device or FIFO would turn it into a
// plain file (as root, `--out /dev/null` once replaced /dev/null itself).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;

TEST(AtomicFile, ReplacesAPlainFile) {
  const fs::path p = test::fresh_temp_dir() / "out.bin";
  std::ofstream(p) << "old";
  write_file_atomically(p.string(), "new");
  std::ifstream in(p);
  std::string got;
  in >> got;
  EXPECT_EQ(got, "new");
}

TEST(AtomicFile, RefusesToReplaceAFifoOrADirectory) {
  const fs::path dir = test::fresh_temp_dir();
  const fs::path fifo = dir / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const fs::path& p : {fifo, dir}) {
    try {
      AtomicFile f(p.string());
      FAIL() << "opened " << p;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()),
            1);  // no temporary
}
