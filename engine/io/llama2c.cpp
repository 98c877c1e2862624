// TEMPORARY stub so the tree links while the reader is written in parallel.
#include "engine/io/llama2c.h"
#include "engine/core/error.h"
namespace mcw {
ModelFile read_llama2c(const std::string& path) { throw Error(path, "llama2.c: not implemented yet"); }
void write_llama2c(const std::string& path, const Llama2cConfig&, const std::vector<Tensor>&) { throw Error(path, "not implemented yet"); }
}
