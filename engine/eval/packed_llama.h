// A llama model whose linear layers run on the packed compressed-weight kernels, for
// latency measured as a deployment would run: each linear that a compression result
// covers uses its CompressedTensor's packed layout (4-bit codes stream 4-bit codes), the
// others, and the head, dense f16 (or f32). Norms, embeddings, attention and the rest
// are the model's own, through llama_forward's linear hook, so the numbers differ from
// llama_forward on the decoded model only by kernel rounding (and f16 storage).
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/compress/compress_llama.h"
#include "engine/eval/latency.h"
#include "engine/kernels/packed_weight.h"
#include "engine/model/llama_model.h"

namespace mcw {

struct PackedLlamaOptions {
  // Linears without a compressed tensor, and the head: f16 when they are f32 (a model built
  // in memory); a weight the file stores as bf16/f16/GGUF blocks runs as stored.
  bool uncompressed_f16 = true;
};

class PackedLlama {
 public:
  // `model` must outlive this object. A compressed tensor is used for the model weight of
  // the same name when it decodes to that weight exactly (for a bf16/f16 weight: when the
  // weight is its decode rounded to that dtype, as a streamed compression writes it; the
  // packed kernels then run the compressed values themselves), or to it times a
  // per-column factor (AWQ folds its input scales into the stored weight): x is then
  // scaled first.
  // Otherwise the weight is packed as if uncompressed, and paths() says why.
  PackedLlama(const LlamaModel& model, std::span<const CompressedLayer> layers,
              const PackedLlamaOptions& opt = {});

  // llama_forward's contract, on the packed weights.
  void forward(std::span<const int32_t> tokens, KVCache& cache, float* logits,
               float* last_logits = nullptr) const;

  const LlamaModel& model() const { return *model_; }
  // "<weight name>: <layout>" for every linear and the head, in model order.
  const std::vector<std::string>& paths() const { return paths_; }
  uint64_t weight_bytes() const;  // what one decode step streams through the linears

 private:
  struct Linear {
    PackedWeight w;
    std::vector<float> prescale;  // per input column, empty when none
  };
  void apply(const Linear& l, const float* x, int64_t T, float* y, const float* bias,
             bool accumulate) const;

  const LlamaModel* model_;
  std::vector<std::array<Linear, 7>> layers_;  // LlamaLinear::Q .. Down
  Linear head_;
  std::vector<std::string> paths_;
};

// How PackedLlama packs a linear it has no compressed tensor for: a bf16/f16/GGUF-block
// weight as stored (a view, no copy), an f32 one as f16 (or f32 without uncompressed_f16).
PackedWeight pack_uncompressed(const Tensor& w, const std::string& name,
                               const PackedLlamaOptions& opt = {});

LatencyResult measure_latency(const PackedLlama& model, const LatencyOptions& opt = {},
                              const ProgressFn& progress = {}, const CancelToken* cancel = nullptr);

}  // namespace mcw
