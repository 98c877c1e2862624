// TEMPORARY stub so the tree links while the reader is written in parallel.
#include "engine/io/hf_directory.h"
#include "engine/core/error.h"
namespace mcw {
ModelFile read_hf_directory(const std::string& dir) { throw Error(dir, "hf: not implemented yet"); }
}
