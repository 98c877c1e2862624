// A model fingerprint: the key under which sensitivity results are cached and runs are
// grouped. It identifies the file contents, not the weights' values: the same model in
// another format (or another dtype) has another fingerprint.
#pragma once
#include <cstdint>
#include <string>

#include "engine/io/model_file.h"

namespace mcw {

// Models whose tensors hold at most this many bytes are hashed whole.
inline constexpr uint64_t kFingerprintFullBytes = uint64_t(64) << 20;

// SHA-256 (hex) over the format, architecture, hyper-parameters, and for each tensor in
// file order its name, dtype, shape and bytes. Past kFingerprintFullBytes only a sample of
// each tensor's bytes goes in (4 KiB at its start, middle and end), so that fingerprinting
// a 14 GB model reads ~100 pages per tensor instead of every byte: two files that differ
// only outside the samples share a fingerprint, a risk accepted for a cache key.
std::string model_fingerprint(const ModelFile& m);

}  // namespace mcw
