// A whole text file as a string; mcw::Error naming the file when it cannot be read.
#pragma once
#include <string>

namespace mcw {

std::string read_text_file(const std::string& path);

}  // namespace mcw
