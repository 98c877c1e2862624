#include "engine/io/staging_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>

#include "engine/core/error.h"

namespace mcw {

namespace fs = std::filesystem;

StagingDir::StagingDir(fs::path out, Mode mode) : out_(std::move(out)) {
  std::error_code ec;
  if (fs::exists(out_, ec)) {
    if (!fs::is_directory(out_, ec)) throw Error(out_.string(), "output path exists and is not a directory");
    if (!fs::is_empty(out_, ec))
      throw Error(out_.string(), "output directory exists and is not empty; choose another or remove it");
  }
  if (mode == Mode::Fresh) {
    staging_ = out_.parent_path() / (out_.filename().string() + ".partial-" + std::to_string(::getpid()));
    fs::remove_all(staging_, ec);
  } else {
    staging_ = out_.parent_path() / (out_.filename().string() + ".partial");
  }
  fs::create_directories(staging_, ec);
  if (ec || !fs::is_directory(staging_, ec))
    throw Error(staging_.string(), "cannot create the staging directory: " + ec.message());
  if (mode == Mode::Resumable) {
    lock_fd_ = ::open(staging_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      if (lock_fd_ >= 0) ::close(lock_fd_);
      lock_fd_ = -1;
      throw Error(staging_.string(), "another process is writing this output");
    }
  }
}

StagingDir::~StagingDir() {
  std::error_code ec;
  if (!committed_ && !keep_) fs::remove_all(staging_, ec);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void StagingDir::clear() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(staging_, ec)) fs::remove_all(e.path(), ec);
}

void StagingDir::commit() {
  std::error_code ec;
  if (fs::exists(out_, ec)) fs::remove(out_, ec);  // checked empty in the constructor
  fs::rename(staging_, out_, ec);
  if (ec) throw Error(out_.string(), "cannot move the finished output into place: " + ec.message());
  committed_ = true;
}

ScratchDir::ScratchDir(const fs::path& parent, const std::string& prefix) {
  std::string tmpl = ((parent.empty() ? fs::temp_directory_path() : parent) / (prefix + "-XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw Error(tmpl, "cannot create a scratch directory");
  path_ = tmpl;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.flush();
  if (!f) throw Error(path, "cannot write");
}

}  // namespace mcw
