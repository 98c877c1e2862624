// Writes a whole output directory so that it appears complete or not at all: files go to
// "<out>.partial-<pid>" beside it, and commit() renames that into place. Destroyed before
// commit (an error, a cancel), it removes the staging directory.
#pragma once
#include <filesystem>
#include <string>

namespace mcw {

class StagingDir {
 public:
  // Throws mcw::Error when `out` exists and is a file or a non-empty directory, or when
  // the staging directory cannot be made.
  explicit StagingDir(std::filesystem::path out);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::filesystem::path& path() const { return staging_; }
  std::string file(const std::string& name) const { return (staging_ / name).string(); }
  void commit();

 private:
  std::filesystem::path out_, staging_;
  bool committed_ = false;
};

// Writes a small text file in one go (no atomicity needed inside a staging directory).
void write_text_file(const std::string& path, const std::string& text);

}  // namespace mcw
