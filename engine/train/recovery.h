// Recovery fine-tuning after compression: low-rank adapters (lora.h) trained on a text with
// the compressed weights frozen as they deploy, the loss either the next tokens'
// cross-entropy or, given the uncompressed model as teacher, the KL from its next-token
// distribution (distillation, which needs no labels). Held-out loss (and KL against the
// teacher) is measured before the first step and every eval_every steps: the recovery
// curve a run records.
//
// Memory: LoRA's student is streamed (streamed_student.h): the frozen weights stay mapped
// or packed and one block at a time is decoded to f32, so a Llama-3-8B-shaped model
// recovers in a few GiB beside its files. QAT trains f32 latent copies of the linears and
// keeps the f32 model and a batch's activations (about 2× the f32 model); that is the demo
// models' method. Both backward passes form no weight gradient (llama_frozen_backward).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/compress/resource_estimate.h"  // ModelShape
#include "engine/core/progress.h"
#include "engine/model/llama_model.h"
#include "engine/recipe/recipe.h"  // ParamSpec
#include "engine/train/block_ap.h"
#include "engine/train/lora.h"

namespace mcw {

struct RecoveryCheckpoint;

struct RecoveryOptions {
  // lora: adapters on frozen compressed weights; qat: the quantised layers themselves
  // trained through their grids (qat.h); block-ap: the same one block at a time at any size
  // (block_ap.h, whose options are `block_ap`; of the rest it reads none).
  enum class Method { Lora, Qat, BlockAp } method = Method::Lora;
  BlockApOptions block_ap;
  // Block-AP: called after every block with what is done (a checkpoint), and a stopped
  // run's blocks to go on from (not owned).
  std::function<void(const BlockApResult&)> block_checkpoint;
  const BlockApResult* block_resume = nullptr;
  int64_t steps = 200;
  int64_t batch = 8;                // windows per optimizer step
  int64_t seq_len = 256;            // tokens predicted per window (capped to the model's context)
  double lr = 1e-3, min_lr = 1e-4;  // warm-up then cosine, as training from scratch
  int64_t warmup = 10;
  double weight_decay = 0;  // on the adapters (PEFT's default)
  double clip = 1.0;        // global norm of the adapters' gradient; <= 0: none
  int64_t rank = 8;
  double alpha = 16;
  LoraScaling scaling = LoraScaling::Lora;
  bool distill = true;  // KL from the teacher when one is given; else cross-entropy
  bool learn_zeros = false;  // QAT: learn the zero points too (qat.h; LSQ+'s offset)
  uint64_t seed = 1;
  int64_t eval_every = 25;    // steps; 0: only before the first and after the last
  int64_t eval_windows = 16;  // held-out windows per evaluation
  // Called every checkpoint_every steps (0: never) with the state to go on from; `resume`
  // (not owned) starts from such a state instead of step 0: the result is then the
  // uninterrupted run's.
  int64_t checkpoint_every = 0;
  std::function<void(const RecoveryCheckpoint&)> checkpoint;
  const RecoveryCheckpoint* resume = nullptr;
};

// A recipe's `recovery:` section (after the stages): its keys with their defaults and
// ranges, which the recipe parser checks it against — Block-AP's own for `method:
// block-ap`, LoRA's and QAT's otherwise; and the options a checked section (defaults filled
// in) gives.
const std::vector<ParamSpec>& recovery_params(std::string_view method = "lora");
RecoveryOptions recovery_options(const nlohmann::json& section);

struct RecoveryStep;

// What a stopped recovery needs to go on exactly where it stopped: the trainables (LoRA's
// A and B, or QAT's latent weights and scales, in order), AdamW's moments, the batch
// sampler's state and the curve so far.
struct RecoveryCheckpoint {
  int64_t step = 0;  // steps done
  std::vector<std::vector<float>> params, adam_m, adam_v;
  std::string sampler;  // the mt19937_64 state, as its operator<< writes it
  std::vector<RecoveryStep> history;
};
// Written atomically as safetensors (tensors p.i, m.i, v.i; step, sampler, history and
// `identity` — what makes it the same run — in the metadata). load throws mcw::Error naming
// the file when it is damaged or its identity is not `identity`.
void save_recovery_checkpoint(const std::string& path, const RecoveryCheckpoint& c,
                              const std::string& identity);
RecoveryCheckpoint load_recovery_checkpoint(const std::string& path, const std::string& identity);

struct RecoveryStep {
  int64_t step = 0, total = 0;  // 0: the evaluation before training
  double loss = 0;              // the step's mean training loss (cross-entropy or KL)
  double lr = 0, grad_norm = 0, seconds = 0;
  std::optional<double> eval_loss;  // held-out cross-entropy (nats per token)
  std::optional<double> eval_kl;    // held-out KL(teacher ‖ model), with a teacher
};

struct RecoveryResult {
  LoraAdapters adapters;                    // LoRA
  std::vector<CompressedTensor> quantized;  // QAT: each layer trained, in its layout
  // QAT: the f32 model with the trained layers fake-quantised (what `quantized` decodes to,
  // up to the f16 rounding of scales). Empty for LoRA, which never holds the model whole.
  LlamaModel merged;
  // Dense weights the recovery trained, by HF name, in place of the model's when it is
  // written (Block-AP's norms).
  std::vector<std::pair<std::string, Tensor>> dense;
  std::vector<RecoveryStep> history;  // step 0 first
};

using RecoveryStepFn = std::function<void(const RecoveryStep&)>;

// What recovering a model of `shape` costs: bytes at the peak and FLOPs (per step the
// training forward and backward and the teacher's forward; the held-out evaluations).
// LoRA's bytes are the streamed student's (streamed_student.h), which do not grow with the
// model's weights: one block's activations and weights in f32, the saved block inputs, the
// adapters with AdamW's state and the teacher's probabilities; a caller holding the model
// or its packed layers in memory adds those. QAT's are the in-memory student's: the f32
// model, latent copies of the linears and every layer's activations.
struct RecoveryCost {
  uint64_t bytes = 0;
  double flops = 0;
};
RecoveryCost recovery_cost(const ModelShape& shape, const RecoveryOptions& opt);
uint64_t recovery_memory_bytes(const LlamaModel& model, const RecoveryOptions& opt);

// The linears every block has (q, k, v, o, gate, up, down), in model order: the default
// targets.
std::vector<std::string> block_linear_names(const LlamaModel& model);

// Trains adapters on `targets` (linear names of `base`) at any size (streamed_student.h):
// the frozen weights are `base`'s in their dtype (usually mapped), with `packed`'s layers
// (read from `packed_source`) decoding in place of the base's weights of their names; one
// block at a time is decoded to f32. The result holds the adapters and the curve (no merged
// model). `teacher` (optional) must have the same vocabulary; `eval_tokens` may be empty
// (no held-out curve). Throws mcw::Error for options or models that cannot work (the file
// name left empty), Cancelled when `cancel` fires.
RecoveryResult recover_lora(const LlamaModel& base,
                            std::span<const CompressedTensor> packed,
                            const LlamaModel* teacher,
                            const std::vector<std::string>& targets,
                            std::span<const int32_t> train_tokens,
                            std::span<const int32_t> eval_tokens,
                            const RecoveryOptions& opt, const ProgressFn& progress = {},
                            const CancelToken* cancel = nullptr,
                            const RecoveryStepFn& on_step = {},
                            const std::string& packed_source = "");

// Quantisation-aware training (qat.h) of `layers` (affine quantised layers of
// `compressed`; their grids start the training, the teacher's weights the latent ones).
RecoveryResult recover_qat(const LlamaModel& compressed, const LlamaModel* teacher,
                           const std::vector<CompressedTensor>& layers,
                           std::span<const int32_t> train_tokens,
                           std::span<const int32_t> eval_tokens, const RecoveryOptions& opt,
                           const ProgressFn& progress = {}, const CancelToken* cancel = nullptr,
                           const RecoveryStepFn& on_step = {});

// Recovery of every compressed layer of `compressed` by opt.method: LoRA adapters on them
// (streamed, the layers decoded as the frozen weights; no merged model), or QAT of them
// (in memory, with the merged model): what a recipe's recovery section does.
RecoveryResult recover_compressed(const LlamaModel& compressed, const LlamaModel* teacher,
                                  const std::vector<CompressedTensor>& layers,
                                  std::span<const int32_t> train_tokens,
                                  std::span<const int32_t> eval_tokens, const RecoveryOptions& opt,
                                  const ProgressFn& progress = {},
                                  const CancelToken* cancel = nullptr);

// `model`'s weights replaced by what `layers` decode to: the compressed layers as they
// deploy, the frozen weights recovery starts from (a model read back from its directory
// holds them in the source's dtype). Throws mcw::Error naming `source` (the packed file)
// for a layer the model lacks or of another shape.
void decode_layers_into(LlamaModel& model, const std::vector<CompressedTensor>& layers,
                        const std::string& source);

// A compressed layer after a recovery, in its layout: QAT's trained layer, or the layer
// merged with its adapter (its decode + s·B·A) and re-coded on its grid (lora_merge.h)
// with the share of the adapter's update that re-coding lost; else the layer as it was.
// One layer's f32 weights at a time.
struct FoldedLayer {
  CompressedTensor tensor;
  bool changed = false;               // trained or re-coded
  std::optional<double> added_error;  // re-coded layers
};
FoldedLayer fold_layer(const CompressedTensor& layer, const RecoveryResult& r);

}  // namespace mcw
