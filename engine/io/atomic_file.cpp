#include "engine/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/core/error.h"

namespace mcw {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  // The rename would replace whatever is there: a device such as /dev/null (as root) or a
  // FIFO would become a plain file. Only plain files (or nothing) are replaced.
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw Error(path_, "exists and is not a regular file; give a file path to write");
  std::string templ = path_ + ".tmp-XXXXXX";
  const int fd = mkstemp(templ.data());
  if (fd < 0) throw Error(path_, std::string("cannot create file: ") + std::strerror(errno));
  tmp_ = templ;
  f_ = fdopen(fd, "wb");
  if (!f_) {
    ::close(fd);
    ::unlink(tmp_.c_str());
    throw Error(path_, "cannot open temporary file");
  }
}

AtomicFile::~AtomicFile() {
  if (f_) std::fclose(f_);
  if (!done_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, f_) != n)
    throw Error(path_, std::string("write failed: ") + std::strerror(errno));
  pos_ += n;
}

void AtomicFile::write_zeros(size_t n) {
  static const std::vector<char> zeros(4096, 0);
  while (n) {
    const size_t k = n < zeros.size() ? n : zeros.size();
    write(zeros.data(), k);
    n -= k;
  }
}

void AtomicFile::commit() {
  if (std::fflush(f_) != 0 || fsync(fileno(f_)) != 0)
    throw Error(path_, std::string("write failed: ") + std::strerror(errno));
  // mkstemp creates 0600; give the file the permissions a plain create would have.
  const mode_t mask = umask(0);
  umask(mask);
  fchmod(fileno(f_), 0666 & ~mask);
  std::fclose(f_);
  f_ = nullptr;
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw Error(path_, std::string("cannot rename into place: ") + std::strerror(errno));
  done_ = true;
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

}  // namespace mcw
