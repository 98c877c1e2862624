// The files recovery fine-tuning reads back: a LoRA adapter in PEFT's layout (its weights,
// or its adapter_config.json, mutated beside a valid other half) and mcw recover's
// checkpoint (read on --resume).
#include <filesystem>
#include <random>
#include <sstream>

#include "engine/core/error.h"
#include "engine/train/lora.h"
#include "engine/train/recovery.h"
#include "fuzz_target.h"
#include "../engine/llama_test_util.h"

using namespace mcw;

namespace {

const std::string kFormat = MCW_FUZZ_FORMAT;

// A valid adapter directory (two modules, RoRA) under the scratch directory.
std::string valid_adapter() {
  const std::string dir = fuzz::scratch_dir() + "/valid-adapter";
  if (!std::filesystem::exists(dir + "/adapter_config.json")) {
    const LlamaModel m = test::random_llama(test::tiny_config(), 3);
    save_lora_peft(dir, init_lora(m, {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"}, 2,
                                  4, LoraScaling::Rora, 1));
  }
  return dir;
}

std::string valid_checkpoint() {
  RecoveryCheckpoint c;
  c.step = 3;
  c.params = {{1, 2, 3}, {4, 5}};
  c.adam_m = {{0.1f, 0.2f, 0.3f}, {0.4f, 0.5f}};
  c.adam_v = c.adam_m;
  std::mt19937_64 sampler(7);
  std::ostringstream s;
  s << sampler;
  c.sampler = s.str();
  RecoveryStep step;
  step.step = 1, step.total = 5, step.loss = 0.5, step.eval_kl = 0.01;
  c.history = {step};
  const std::string path = fuzz::scratch_dir() + "/seed-checkpoint.safetensors";
  save_recovery_checkpoint(path, c, "fuzz");
  return path;
}

}  // namespace

std::vector<std::string> fuzz_seeds() {
  if (kFormat == "checkpoint") return {fuzz::read_bytes(valid_checkpoint())};
  const std::string dir = valid_adapter();
  return {fuzz::read_bytes(dir + (kFormat == "peft_config" ? "/adapter_config.json" : "/adapter_model.safetensors"))};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  MCW_FUZZ_BODY({
    if (kFormat == "checkpoint") {
      (void)load_recovery_checkpoint(fuzz::write_scratch("checkpoint.safetensors", data, size), "fuzz");
    } else {
      const std::string dir = fuzz::scratch_dir() + "/adapter";
      std::filesystem::create_directories(dir);
      const std::string valid = valid_adapter();
      const bool config = kFormat == "peft_config";
      fuzz::write_scratch("adapter/adapter_config.json",
                          config ? std::string(reinterpret_cast<const char*>(data), size)
                                 : fuzz::read_bytes(valid + "/adapter_config.json"));
      fuzz::write_scratch("adapter/adapter_model.safetensors",
                          config ? fuzz::read_bytes(valid + "/adapter_model.safetensors")
                                 : std::string(reinterpret_cast<const char*>(data), size));
      (void)load_lora_peft(dir);
    }
  })
}
