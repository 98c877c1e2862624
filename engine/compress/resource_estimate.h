// Before a job starts: how much memory and time compressing a llama model with a recipe
// (and then evaluating it) will take, from the model's shapes alone, so the studio can warn
// before a run that would not fit. Memory follows what compress_llama actually holds:
// the base model and its working f32 copy, the compressed tensors, and at the worst moment
// of one stage its transient buffers (calibration activations of one block for every
// calibration token, one group's input statistics, one layer's Hessian and its factor
// copies). Duration is a FLOP count divided by the machine's measured GEMM speed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model/llama_config.h"
#include "engine/recipe/recipe.h"

namespace mcw {

struct LinearShape {
  std::string name;            // Hugging Face name, e.g. "model.layers.0.mlp.up_proj.weight"
  int64_t rows = 0, cols = 0;  // out features, in features
};

// What the estimate needs of a model: its linears in model order, its other parameters and
// the widths of one block's activations.
struct ModelShape {
  std::vector<LinearShape> linears;
  std::vector<std::string> tensor_names;  // every weight, model order (for check_targets)
  uint64_t other_params = 0;              // embeddings, norms, biases, output head
  int64_t dim = 0, q_dim = 0, hidden_dim = 0, n_layers = 0, vocab = 0;
  int64_t kv_dim = 0, n_heads = 0, context = 0;
  uint64_t parameters() const;
};
ModelShape model_shape(const LlamaConfig& cfg);

struct EstimateSettings {
  int64_t calib_windows = 64, calib_window = 256;  // a recipe's calibration section wins
  int64_t eval_tokens = 0;  // tokens scored after compressing (0: no evaluation)
  double gflops = 0;        // machine speed in GFLOP/s; <= 0: measured_gemm_gflops()
  // The streaming pipeline (mcw compress with StreamedLlamaWriter): the weights stay in
  // their mapped file (page cache, which the kernel can drop, so not counted); only the
  // block being worked on is in f32, its compressed layers are written when it is done,
  // and the calibration activations between blocks take `activation_bytes` per value
  // (2: bf16). Without it: the whole-model, in-memory run of a model built in f32.
  bool streamed = false;
  int activation_bytes = 4;
  uint64_t activation_budget = uint64_t(1) << 62;  // past it the activations are page cache
  // A project run (streamed): every compressed layer is kept for the latency measurement,
  // which packs them once more, beside the evaluation's logits of the compressed model
  // and the baseline over windows of `run_eval_window` tokens. 0: a plain compression,
  // which writes and drops each block's layers.
  int64_t run_eval_window = 0;
};

struct ResourceEstimate {
  // Bytes. peak = base + working + compressed + transient + slack.
  // Streamed: base = the f32 norms and biases; working = one block in f32; compressed =
  // one block's layers and all those of earlier stages (kept until the last writes them).
  uint64_t base_bytes = 0;        // the model as loaded (f32)
  uint64_t working_bytes = 0;     // compress_llama's f32 copy that the stages rewrite
  uint64_t compressed_bytes = 0;  // the compressed tensors, twice (kept, then re-ordered)
  uint64_t transient_bytes = 0;   // the largest stage's buffers at their worst moment
  // Streamed: what the sums above miss at real size, 10 % of them plus 64 MiB (freed
  // buffers glibc keeps for reuse, thread stacks, the runtime): the Llama-3-8B RTN run's
  // measured peak was 4 % over the sums. 0 for the in-memory estimate.
  uint64_t slack_bytes = 0;
  // A project run's evaluation and latency phase: the kept compressed layers, their packed
  // copies, two windows of logits and the check of the largest layer's decode, beside
  // base_bytes (0 unless run_eval_window > 0).
  uint64_t evaluation_bytes = 0;
  // A recipe's recovery section (engine/train/recovery.h: recovery_cost), beside base_bytes
  // and the compressed layers (twice those in a project run, while it writes the recovered
  // model).
  uint64_t recovery_bytes = 0;
  uint64_t peak_bytes = 0;  // the larger phase, with slack
  // FLOPs and seconds.
  double compress_flops = 0, eval_flops = 0, recovery_flops = 0;
  double gflops = 0;  // the speed used
  double seconds = 0;
};

// Throws nothing for a recipe that parse_recipe accepted.
ResourceEstimate estimate_resources(const ModelShape& model, const Recipe& recipe,
                                    const EstimateSettings& settings);

// GFLOP/s of this machine's f32 GEMM on 192x192x192 products (best of a few, ~10 ms),
// measured once per process. This is the rate of well-blocked dense work; memory-bound
// steps (rounding, sorting) run slower, so estimates of those lean optimistic.
double measured_gemm_gflops();
// GFLOP/s of the f32 GEMM on n x n x n products, best of `repeats`: with n = 1024 (2 GFLOP a
// product) the machine's practical GEMM peak, which a calibration pass is measured against.
double measure_gemm_gflops(int64_t n, int repeats);

}  // namespace mcw
