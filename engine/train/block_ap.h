// Block-wise quantisation-aware training: the first phase of EfficientQAT, Block-AP (Chen et
// al. 2024, "EfficientQAT: Efficient Quantization-Aware Training for Large Language
// Models"; the procedure of quantize/block_ap.py in OpenGVLab/EfficientQAT). The decoder
// blocks are trained one at a time, in order. For block l:
//   - targets: the uncompressed block run on the uncompressed model's inputs (the
//     full-precision stream, carried from block to block);
//   - inputs: the quantised model's stream, the outputs of the blocks already trained;
//   - trained: every weight of the block — the latent weights of its quantised linears
//     through EfficientQAT's fake quantiser (qat.h, QatRule::EfficientQat: scales and integer
//     zero points learnt), and its two norms' weights — by AdamW on the mean squared error
//     between the block's output and the target, quantisation parameters and weights in two
//     groups with their own learning rates, each a cosine from its rate to rate/20 over all
//     iterations, `epochs` passes over the training windows in order, no gradient clipping;
//   - then packed on the learnt grids, and the quantised stream run through the packed block.
// Only one block is in f32 at a time (its latent, fake-quantised and gradient copies and
// AdamW's two moments: 24 bytes per weight of the block) beside the two streams (2 · windows
// · seq_len · dim values), so a Llama-3-8B-shaped model trains in about 7 GiB at the default
// setting; the teacher's weights stay in their file and dtype.
//
// Deviations, on purpose: f32 throughout (the reference trains under fp16 autocast and
// keeps the streams in fp16); the calibration windows are drawn from one token stream at
// seeded random starts (the reference draws documents of RedPajama); the default setting is
// smaller than the paper's (block_ap_paper_options(): 4096 + 64 windows of 2048 tokens);
// linears left uncompressed stay frozen (the reference quantises every linear).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/compress/resource_estimate.h"  // ModelShape
#include "engine/core/progress.h"
#include "engine/model/llama_model.h"

namespace mcw {

struct BlockApOptions {
  int64_t train_windows = 128, val_windows = 16;  // calibration windows of seq_len tokens
  int64_t seq_len = 256;
  int64_t batch = 2;  // windows per step
  int64_t epochs = 2;
  double quant_lr = 1e-4;  // scales and zero points
  // Latent weights and norms; < 0: the paper's for the narrowest layer, 2e-5 at 2 bits
  // and 1e-5 above (its example scripts).
  double weight_lr = -1;
  double min_lr_factor = 20;  // each cosine ends at its rate / this
  double weight_decay = 0;
  uint64_t seed = 2;
};
// The paper's setting: 4096 training and 64 validation windows of 2048 tokens.
BlockApOptions block_ap_paper_options();

struct BlockApBlock {
  int64_t layer = 0;
  double start_val = 0;  // validation MSE before training (the grids as compressed)
  std::vector<double> train_loss, val_loss;  // per epoch: mean training MSE, then validation
  double seconds = 0;
};

struct BlockApResult {
  std::vector<CompressedTensor> quantized;            // trained layers, in their layouts
  std::vector<std::pair<std::string, Tensor>> norms;  // trained norm weights (f32), by HF name
  std::vector<BlockApBlock> blocks;                   // one per trained block, in order
};

// Called after each block with what it added to the result (its layers and norms are the
// result's last ones): a checkpoint, a log line.
using BlockApBlockFn = std::function<void(const BlockApResult& so_far)>;

// Trains `layers` (affine quantised linears of `teacher`'s blocks: their grids start the
// training, the teacher's weights the latent ones) on windows of `tokens`. `resume`, when
// given, is the result of a run of the same inputs stopped after some blocks: those are not
// trained again (the streams run through them as they were), and the result is the
// uninterrupted run's. Throws mcw::Error (the file name left empty) for options or layers
// that cannot work, Cancelled between steps.
BlockApResult block_ap(const LlamaModel& teacher, std::span<const CompressedTensor> layers,
                       std::span<const int32_t> tokens, const BlockApOptions& opt,
                       const ProgressFn& progress = {}, const CancelToken* cancel = nullptr,
                       const BlockApBlockFn& on_block = {}, const BlockApResult* resume = nullptr);

// A stopped run's blocks, kept beside its output (`path` and `path`.packed): the trained
// layers packed, the norms and the per-block figures, with `identity` (what makes it the
// same run). Written after each block, the packed file first, so that a stop between the two
// leaves a checkpoint that names only layers the packed file holds. load throws mcw::Error
// naming the file when it is damaged, of another run, or names a layer it lacks.
void save_block_ap_checkpoint(const std::string& path, const BlockApResult& r,
                              const std::string& identity);
BlockApResult load_block_ap_checkpoint(const std::string& path, const std::string& identity);

// Bytes at the peak (the two streams, one block's f32 copies and optimizer state, a batch's
// activations) and FLOPs (per step the block's forward and backward; per block the target
// and the stream passes) of block_ap on a model of `shape`.
struct BlockApCost {
  uint64_t bytes = 0;
  double flops = 0;
};
BlockApCost block_ap_cost(const ModelShape& shape, const BlockApOptions& opt);

}  // namespace mcw
