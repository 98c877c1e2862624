#include "engine/io/staging_dir.h"

#include <unistd.h>

#include <fstream>

#include "engine/core/error.h"

namespace mcw {

namespace fs = std::filesystem;

StagingDir::StagingDir(fs::path out) : out_(std::move(out)) {
  std::error_code ec;
  if (fs::exists(out_, ec)) {
    if (!fs::is_directory(out_, ec)) throw Error(out_.string(), "output path exists and is not a directory");
    if (!fs::is_empty(out_, ec))
      throw Error(out_.string(), "output directory exists and is not empty; choose another or remove it");
  }
  staging_ = out_.parent_path() / (out_.filename().string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(staging_, ec);
  if (!fs::create_directories(staging_, ec) || ec)
    throw Error(staging_.string(), "cannot create the staging directory: " + ec.message());
}

StagingDir::~StagingDir() {
  std::error_code ec;
  if (!committed_) fs::remove_all(staging_, ec);
}

void StagingDir::commit() {
  std::error_code ec;
  if (fs::exists(out_, ec)) fs::remove(out_, ec);  // checked empty in the constructor
  fs::rename(staging_, out_, ec);
  if (ec) throw Error(out_.string(), "cannot move the finished output into place: " + ec.message());
  committed_ = true;
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.flush();
  if (!f) throw Error(path, "cannot write");
}

}  // namespace mcw
