#include "engine/core/text_file.h"

#include <fstream>
#include <sstream>

#include "engine/core/error.h"

namespace mcw {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open text file");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace mcw
