#include "engine/core/error.h"

namespace mcw {

static std::string format_error(const std::string& file, const std::string& message,
                                int64_t offset) {
  std::string s = file.empty() ? std::string() : file + ": ";
  if (offset >= 0) s += "at byte " + std::to_string(offset) + ": ";
  return s + message;
}

Error::Error(std::string file, std::string message, int64_t offset)
    : std::runtime_error(format_error(file, message, offset)),
      file_(std::move(file)),
      message_(std::move(message)),
      offset_(offset) {}

}  // namespace mcw
