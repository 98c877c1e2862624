// Model files: the bytes become one file of a model, the rest of the model stays valid, and
// MCW opens it as `mcw inspect` / `mcw eval` would (format detection, header, config,
// tensor table, tokenizer, the model loader's checks). One source, one target per format
// (MCW_FUZZ_FORMAT): safetensors, config (config.json beside valid weights), gguf, llama2c,
// phi3 (a Phi-3 directory's weights: fused projections loaded as row views), gptq, awq and
// compressed_tensors (the weights file of a quantised checkpoint; whatever opens is decoded
// whole), and onnx (a graph with weights in four encodings and a Constant node).
#include <filesystem>
#include <fstream>

#include "../engine/compressed_tensors_writer.h"
#include "../engine/llama_test_util.h"
#include "../engine/onnx_test_writer.h"
#include "../engine/phi3_writer.h"
#include "../engine/quantized_checkpoint_writer.h"
#include "engine/core/error.h"
#include "engine/export/gguf_export.h"
#include "engine/io/model_file.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/model/causal_lm.h"
#include "engine/model/llama_save.h"
#include "engine/model/tokenizer_loader.h"
#include "fuzz_target.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = MCW_FUZZ_FORMAT;

LlamaModel seed_model() {
  LlamaConfig c = test::tiny_config(2, 1);
  c.vocab_size = 260;  // room for the byte vocabulary
  c.dim = 16, c.hidden_dim = 24, c.n_layers = 1, c.head_dim = 8;
  return test::random_llama(c, 3);
}

// A valid model of this format in `dir`; returns the path of the file the input replaces.
std::string write_valid(const std::string& dir) {
  fs::create_directories(dir);
  const LlamaModel m = seed_model();
  const std::string f = kFormat;
  if (f == "safetensors" || f == "config") {
    TokenizerFiles tok;
    tok.byte_vocab = true;
    save_llama_hf(m, dir, tok);
    return dir + (f == "config" ? "/config.json" : "/model.safetensors");
  }
  if (f == "phi3") {  // fused qkv_proj / gate_up_proj, loaded as row views
    test::write_phi3(m, dir);
    return dir + "/model.safetensors";
  }
  if (f == "gptq" || f == "awq") {  // 3-bit act-order: codes across words, a g_idx to check
    test::write_checkpoint(dir, f == "gptq" ? test::Layout::GptqV1 : test::Layout::Awq,
                           f == "gptq" ? 3 : 4, 32, f == "gptq");
    return dir + "/model.safetensors";
  }
  if (f == "compressed_tensors") {  // 3-bit stream packing, packed zero points, g_idx
    test::CtOptions o;
    o.bits = 3, o.stream = true, o.symmetric = false, o.act_order = true;
    test::write_ct_checkpoint(dir, o);
    return dir + "/model.safetensors";
  }
  if (f == "onnx") {
    std::ofstream(dir + "/model.onnx", std::ios::binary) << test::onnx_model();
    return dir + "/model.onnx";
  }
  if (f == "gguf") {
    save_llama_gguf(m, dir + "/model.gguf", DType::F16);
    return dir + "/model.gguf";
  }
  save_llama_llama2c(m, dir + "/model.bin");
  return dir + "/model.bin";
}

const std::string& target_file() {
  static const std::string path = write_valid(fuzz::scratch_dir() + "/model");
  return path;
}

// The products on a weight's own codes (GGUF blocks, checkpoint layers; int8 and f32
// activations, decode and prefill sizes): whatever a hostile file holds, they stay inside it.
void run_products(const Tensor& t) {
  const bool quantised = t.dtype() == DType::Packed || is_block_type(t.dtype());
  if (!quantised || !t.readable() || t.shape().size() != 2 || t.numel() > (int64_t(1) << 20)) return;
  for (int64_t m : {1, 9})
    for (bool int8 : {true, false}) {
      set_int8_activations(int8);
      std::vector<float> x(size_t(m * t.dim(1)), 0.5f), y(size_t(m * t.dim(0)));
      matmul_wt_stored(x.data(), t, y.data(), m);
    }
  set_int8_activations(true);
}

}  // namespace

std::vector<std::string> fuzz_seeds() {
  std::vector<std::string> seeds = {fuzz::read_bytes(target_file())};
  if (std::string(kFormat) == "config") {  // the family and rope variants config.json selects
    nlohmann::json j = nlohmann::json::parse(seeds[0]);
    j["max_position_embeddings"] = 1024, j["original_max_position_embeddings"] = 64;
    j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", {1.0, 1.5, 2.0, 3.0}},
                         {"long_factor", {2.0, 3.0, 4.0, 5.0}}};
    seeds.push_back(j.dump());
    j.erase("rope_scaling");
    j["model_type"] = "qwen2", j["use_sliding_window"] = true, j["sliding_window"] = 4, j["max_window_layers"] = 0;
    seeds.push_back(j.dump());
    j["model_type"] = "phi3";  // asks for fused qkv_proj / gate_up_proj the weights lack
    seeds.push_back(j.dump());
  }
  return seeds;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = target_file();
  const std::string name = fs::path(path).filename().string();
  fuzz::write_scratch("model/" + name, data, size);
  const std::string open_path =
      fs::path(path).filename() == "model.safetensors" || fs::path(path).filename() == "config.json"
          ? fs::path(path).parent_path().string()
          : path;
  MCW_FUZZ_BODY({
    const ModelFile file = open_model_file(open_path);
    for (const Tensor& t : file.tensors) {
      if (t.decoder() && t.readable()) (void)t.to_f32();  // every code, zero, scale, g_idx
      run_products(t);
    }
    if (file.format != ModelFormat::ONNX) {  // an ONNX graph is no language model
      const auto model = load_causal_lm(file);
      try {
        (void)load_tokenizer(file);
      } catch (const Error&) {
      }
    }
  })
}
