// TEMPORARY stub so the tree links while the reader is written in parallel.
#include "engine/io/gguf.h"
#include "engine/core/error.h"
namespace mcw {
ModelFile read_gguf_model(const std::string& path) { throw Error(path, "gguf: not implemented yet"); }
}
