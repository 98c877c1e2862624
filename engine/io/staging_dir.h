// Writes a whole output directory so that it appears complete or not at all: files go to
// "<out>.partial-<pid>" beside it, and commit() renames that into place. Destroyed before
// commit (an error, a cancel), it removes the staging directory.
//
// Resumable (long jobs that checkpoint): the staging directory is "<out>.partial", found
// again by the next run; what is in it is left for the caller to judge (resume or
// clear()), and it is kept when destroyed before commit once keep_on_failure() was called.
// A lock on it refuses a second process writing the same output.
#pragma once
#include <filesystem>
#include <string>

namespace mcw {

class StagingDir {
 public:
  // Throws mcw::Error when `out` exists and is a file or a non-empty directory, or when
  // the staging directory cannot be made.
  enum class Mode { Fresh, Resumable };
  explicit StagingDir(std::filesystem::path out, Mode mode = Mode::Fresh);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::filesystem::path& path() const { return staging_; }
  std::string file(const std::string& name) const { return (staging_ / name).string(); }
  void commit();
  void clear();  // empties the staging directory (a resumable one's leftovers)
  void keep_on_failure(bool keep = true) { keep_ = keep; }

 private:
  std::filesystem::path out_, staging_;
  bool committed_ = false, keep_ = false;
  int lock_fd_ = -1;
};

// A fresh directory "<prefix>-XXXXXX" in `parent` (empty: the system's temporary
// directory), made by mkdtemp and removed with all it holds when destroyed. Throws
// mcw::Error naming it when it cannot be made.
class ScratchDir {
 public:
  ScratchDir(const std::filesystem::path& parent, const std::string& prefix);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Writes a small text file in one go (no atomicity needed inside a staging directory).
void write_text_file(const std::string& path, const std::string& text);

}  // namespace mcw
