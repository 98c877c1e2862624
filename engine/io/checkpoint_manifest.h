// The manifests of resumable jobs' checkpoints (mcw compress's blocks, the GGUF export's
// GPTQ pass): read back whole with one clear error for anything damaged, and compared with
// what the resuming job is, naming what differs.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace mcw {

// The manifest's name inside a checkpoint directory, written last and atomically.
inline constexpr const char* kCheckpointManifest = ".checkpoint.json";

// The manifest `file` parsed; throws mcw::Error naming it when it is unreadable or its
// "version" is not `version`.
nlohmann::json read_checkpoint_manifest(const std::string& file, int version);

// Throws mcw::Error naming `dir` unless `found` (a manifest's identity) equals `expected`:
// another mcw's format ("format" key), or another job, naming the keys that differ.
void check_checkpoint_identity(const std::string& dir, const nlohmann::json& expected,
                               const nlohmann::json& found);

// A file name from a manifest: a plain name inside its directory, nothing else.
std::string checked_file_name(const std::string& manifest, const nlohmann::json& v);

}  // namespace mcw
