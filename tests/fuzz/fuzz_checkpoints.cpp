// Fuzz targets for the manifests of resumable jobs' checkpoints, which a user's disk may
// hold damaged or tampered with. Each mutates the manifest beside the valid files it names
// and takes it up as the resuming command does:
//   gguf_checkpoint      the GGUF export's GPTQ pass (gguf_gptq_checkpoint.h), as
//                        `mcw export --resume`;
//   compress_checkpoint  mcw compress's blocks (StreamedLlamaWriter), as `mcw compress
//                        --resume`: the manifest read, checked and restored into the model.
#include <filesystem>
#include <map>

#include "../engine/compress_test_util.h"
#include "engine/compress/activation_store.h"
#include "engine/core/error.h"
#include "engine/export/gguf_gptq.h"
#include "engine/export/gguf_gptq_checkpoint.h"
#include "engine/export/streamed_llama_writer.h"
#include "fuzz_target.h"

using namespace mcw;

namespace {

const std::string kFormat = MCW_FUZZ_FORMAT;
const nlohmann::json kIdentity = {{"format", 1}, {"model", "fuzz"}};
const char* const kRecipe = "stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 32\n";

const LlamaModel& compress_base() {
  static const LlamaModel m = test::random_llama(test::compress_config(3), 3);
  return m;
}

struct Stopped {};

// A compression stopped after its first block, as a kill would stop it.
const std::string& valid_compress_checkpoint() {
  static const std::string dir = [] {
    const std::string d = fuzz::scratch_dir() + "/seed-compress";
    std::filesystem::create_directories(d);
    StreamedLlamaWriter writer(d, DType::F32, kIdentity);
    CompressOptions o = test::calib_options(3, 24);
    o.block_done = [&](const BlockDone& done, CompressionResult& r) {
      writer.block_done(done, r);
      if (done.resumable) throw Stopped{};
    };
    try {
      compress_llama(compress_base(), parse_recipe(kRecipe, "fuzz.yaml"),
                     test::random_tokens(200, 4), o);
    } catch (const Stopped&) {
    }
    return d;
  }();
  return dir;
}

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
  const std::string dir = kFormat == "compress" ? valid_compress_checkpoint() : valid_checkpoint();
  return {fuzz::read_bytes(dir + "/.checkpoint.json")};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The valid files stay; each input is a new manifest beside them.
  if (kFormat == "compress") {
    const std::string dir = valid_compress_checkpoint();
    fuzz::write_scratch("seed-compress/.checkpoint.json", data, size);
    MCW_FUZZ_BODY({
      (void)StreamedLlamaWriter::read_checkpoint(dir);
      StreamedLlamaWriter writer(dir, DType::F32, kIdentity);
      const ResumePoint p = writer.resume();
      CompressionResult r;
      r.model = compress_base();
      p.restore(r);
    })
  }
  const std::string dir = valid_checkpoint();
  fuzz::write_scratch("seed-checkpoint/.checkpoint.json", data, size);
  MCW_FUZZ_BODY({
    GgufGptqCheckpoint c(dir, kIdentity);
    (void)c.resume();
    (void)GgufGptqCheckpoint::blocks_done(dir);
  })
}
