// packed.safetensors, MCW's compressed-layer file (read back by inspect, eval, the studio's
// packed-layer view and resume): every coding written once, then the bytes mutated.
#include <random>

#include "engine/compress/magnitude.h"
#include "engine/compress/outliers.h"
#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "engine/export/packed_safetensors.h"
#include "fuzz_target.h"
#include "../engine/llama_test_util.h"

using namespace mcw;

std::vector<std::string> fuzz_seeds() {
  std::mt19937 rng(5);
  const Tensor w = test::random_tensor({8, 32}, rng, 0.2f);
  RtnOptions o;
  o.bits = 4, o.group_size = 16;
  CompressedTensor a = quantize_rtn(w.as<float>(), 8, 32, o, nullptr, nullptr, "a.weight");
  add_outliers(a, w.as<float>(), nullptr, {0.05, false});
  o.bits = 3, o.symmetric = true, o.scope = QuantScope::PerChannel;
  CompressedTensor b = quantize_rtn(w.as<float>(), 8, 32, o, nullptr, nullptr, "b.weight");
  CompressedTensor c = magnitude_prune(w, {SparsityTarget{0.5}, PruneScope::PerLayer});
  c.name = "c.weight";
  const std::string path = fuzz::scratch_dir() + "/seed.safetensors";
  write_packed_safetensors(path, {a, b, c});
  return {fuzz::read_bytes(path)};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  MCW_FUZZ_BODY({
    for (const CompressedTensor& t : read_packed_safetensors(fuzz::write_scratch("packed.safetensors", data, size)))
      (void)t.dequantize();
  })
}
