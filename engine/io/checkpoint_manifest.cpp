#include "engine/io/checkpoint_manifest.h"

#include "engine/core/error.h"
#include "engine/core/mapped_file.h"

namespace mcw {

using json = nlohmann::json;

json read_checkpoint_manifest(const std::string& file, int version) {
  try {
    const auto f = MappedFile::open(file);
    json m = json::parse(std::string_view(reinterpret_cast<const char*>(f->data()), f->size()));
    if (!m.is_object() || m.value("version", 0) != version)
      throw Error(file, "is not a checkpoint this mcw can resume");
    return m;
  } catch (const json::exception& e) {
    throw Error(file, std::string("unreadable checkpoint: ") + e.what());
  }
}

void check_checkpoint_identity(const std::string& dir, const json& expected, const json& found) {
  if (!found.is_object() || found.value("format", 1) != expected.value("format", 1))
    throw Error(
        dir,
        "its checkpoint was made by another version of mcw; remove the directory to start over");
  if (found == expected) return;
  std::string what;
  for (const auto& [k, v] : expected.items())
    if (!found.contains(k) || found[k] != v) what += (what.empty() ? "" : ", ") + k;
  for (const auto& [k, v] : found.items())  // a key only the checkpoint's job had
    if (!expected.contains(k)) what += (what.empty() ? "" : ", ") + k;
  throw Error(dir, "its checkpoint is of another run (a different " +
                       (what.empty() ? "run" : what) + "); remove the directory to start over");
}

std::string checked_file_name(const std::string& manifest, const json& v) {
  const std::string n = v.get<std::string>();
  if (n.find('/') != std::string::npos || n == "." || n == "..")
    throw Error(manifest, "names a file outside its directory: " + n);
  return n;
}

}  // namespace mcw
