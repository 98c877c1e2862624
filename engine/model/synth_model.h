// Random llama-family models in the exact shapes of real ones (Llama-3.2-1B, Llama-3-8B,
// Qwen2.5-0.5B), for benchmarking memory and time at real size without downloading
// weights. Values are scaled like a trained model's and carry planted LLM.int8()-style
// outlier features; each is a pure function of (seed, tensor name, index), so any split
// of the work over threads writes the same file.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/progress.h"
#include "engine/core/tensor.h"
#include "engine/model/llama_config.h"

namespace mcw {

struct SynthOptions {
  std::string shape = "tiny";  // one of synth_shape_names()
  uint64_t seed = 0;
  int64_t outliers = 6;       // planted outlier hidden dimensions (0: none)
  double outlier_scale = 50;  // their size over the rest at the linear layers' inputs
  int64_t layers = 0;         // overrides the shape's layer count when > 0
};

// How a tensor's values are drawn (see synth_values.cpp for the scales and why).
enum class SynthInit {
  Embedding,     // [vocab, D], outlier columns larger
  NormedReader,  // [out, D] reading a normed layer input (q/k/v, gate/up): outlier columns smaller
  Linear,        // [out, in], plain (lm_head)
  ResidualWriter,  // [D, in] writing into the residual stream (o_proj, down_proj): outlier rows
                   // larger
  LayerNorm,       // input_layernorm / post_attention_layernorm: outlier gains larger
  FinalNorm,
  Bias,
  // GPT-2's Conv1D weights, stored [in, out]: the same draws transposed (fan-in = rows).
  NormedReaderConv1D,    // [D, out]: outlier rows smaller
  ResidualWriterConv1D,  // [in, D]: outlier columns larger
};

struct SynthTensor {
  std::string name;
  Shape shape;
  SynthInit init;
  int64_t numel() const;
  uint64_t bytes() const { return uint64_t(numel()) * 2; }  // bf16
};

struct SynthPlan {
  std::string shape;
  std::string model_type;  // "llama" or "qwen2", as config.json says
  LlamaConfig cfg;
  SynthOptions options;
  std::vector<int64_t> outlier_channels;  // sorted hidden dimensions
  std::vector<SynthTensor> tensors;       // in file order

  uint64_t parameter_count() const;
  uint64_t data_bytes() const;
  // config.json as the real model's, plus an "mcw_synth" record of how it was made.
  nlohmann::ordered_json hf_config() const;
};

// splitmix64's finaliser: the counter-based hash every synthetic value is drawn from.
inline uint64_t synth_mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

const std::vector<std::string>& synth_shape_names();  // "llama-3.2-1b", ..., "tiny"

// The tensor list and config, nothing generated; throws mcw::Error for an unknown shape or
// impossible options.
SynthPlan plan_synth_model(const SynthOptions& options);

// bf16 bits of elements [begin, begin + n) of plan.tensors[t]: the same however the
// tensor is split into calls.
void synth_values(const SynthPlan& plan, size_t t, int64_t begin, int64_t n, uint16_t* out);

// Writes a Hugging Face directory (config.json, model.safetensors in bf16 and a byte-level
// mcw_tokenizer.json) at `dir`, which must not exist or be empty. It appears complete or not
// at all (StagingDir); memory stays at two batches of 64 MB whatever the model's size.
// Cancel throws mcw::Cancelled and leaves nothing behind.
void write_synth_model(const SynthPlan& plan, const std::string& dir,
                       const ProgressFn& progress = {}, const CancelToken* cancel = nullptr);

}  // namespace mcw
