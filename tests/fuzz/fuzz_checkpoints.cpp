// Fuzz target for the manifest of a resumable job's checkpoint, which a user's disk may hold
// damaged or tampered with: gguf_checkpoint (the GGUF export's GPTQ pass,
// gguf_gptq_checkpoint.h) — the manifest mutated beside the valid weight and activation
// files it names, then taken up as `mcw export --resume` takes it up.
#include <filesystem>
#include <map>

#include "engine/compress/activation_store.h"
#include "engine/core/error.h"
#include "engine/export/gguf_gptq.h"
#include "engine/export/gguf_gptq_checkpoint.h"
#include "fuzz_target.h"

using namespace mcw;

namespace {

const nlohmann::json kIdentity = {{"format", 1}, {"model", "fuzz"}};

// A checkpoint after the first of two blocks: one Q8_0 weight, the next block's inputs.
const std::string& valid_checkpoint() {
  static const std::string dir = [] {
    const std::string d = fuzz::scratch_dir() + "/seed-checkpoint";
    std::filesystem::create_directories(d);
    GgufGptqCheckpoint c(d, kIdentity);
    std::vector<std::byte> blocks(size_t(2 * 34));  // two rows of one Q8_0 block (f16 + 32 codes)
    for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = std::byte(i * 7);
    c.write_weight("model.layers.0.self_attn.q_proj.weight", blocks, DType::Q8_0, {2, 32});
    ActivationStore hidden({3, 2}, 32, DType::F32, uint64_t(1) << 20, d);
    std::map<std::string, GgufGptqError> errors;
    GgufGptqError& e = errors["model.layers.0.self_attn.q_proj.weight"];
    e.type = DType::Q8_0, e.diff = 0.5, e.ref = 3, e.out_diff = 0.25, e.out_ref = 2;
    e.baseline_out_diff = 0.375, e.percdamp = 0.01;
    c.block_done(0, 2, hidden, errors);
    return d;
  }();
  return dir;
}

}  // namespace

std::vector<std::string> fuzz_seeds() {
  return {fuzz::read_bytes(valid_checkpoint() + "/.checkpoint.json")};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The valid files stay; each input is a new manifest beside them.
  const std::string dir = valid_checkpoint();
  fuzz::write_scratch("seed-checkpoint/.checkpoint.json", data, size);
  MCW_FUZZ_BODY({
    GgufGptqCheckpoint c(dir, kIdentity);
    (void)c.resume();
    (void)GgufGptqCheckpoint::blocks_done(dir);
  })
}
