// One error type for everything a user can get wrong: it names the file and, where
// known, the byte offset, so the CLI and the studio can print a single precise line.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mcw {

class Error : public std::runtime_error {
 public:
  Error(std::string file, std::string message, int64_t offset = -1);
  const std::string& file() const { return file_; }
  const std::string& message() const { return message_; }
  int64_t offset() const { return offset_; }  // -1 when the problem has no position

 private:
  std::string file_, message_;
  int64_t offset_;
};

// Thrown by long operations when their CancelToken fires; never an error for the user.
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("cancelled") {}
};

}  // namespace mcw
