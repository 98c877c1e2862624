// Products with a weight as its file stores it: Y[m, n] (+)= X[m, k] · Wᵀ (+ bias[n]) for
// W [n, k] in F32, F16, BF16, a GGUF block type, or Packed (a TensorDecoder), usually a view of a
// memory-mapped file. The weight is never converted whole: each task converts one tile of
// rows into its own f32 scratch (about 32 KiB for small m, where the product streams W
// once and is bound by memory bandwidth; about 1 MiB for large m, where the f32 GEMM on
// the tile dominates) and runs the f32 kernels of gemm.h on it. So a bf16 model costs
// its file's bytes in page cache and no anonymous memory beyond the scratch. F16 and BF16
// need no scratch at all for m <= 8, nor BF16 for larger m with bf16_activations (below).
#pragma once
#include <cstdint>
#include <functional>

#include "engine/core/tensor.h"

namespace mcw {

// True when matmul_wt_stored reads this dtype.
bool stored_matmul_reads(DType t);

// BF16 and F16 weights skip the scratch: for m <= 8 (decode) each row is widened to f32 in
// registers and multiplied against the f32 activations (half_gemv.h), exact up to f32
// summation order like the tile path. So do GPTQ checkpoint layers (a decoder with a
// column_packed() layout) on AVX-512: the codes are dequantised in registers
// (column_packed_gemv.h), to the decoder's values exactly; and compressed-tensors
// pack-quantized layers (row_packed(): row_packed_gemv.h).
//
// bf16_activations (default off, process-wide): for BF16 weights and m > 8 (prefill) on a
// CPU with AVX-512 BF16, round the activations X to bf16 and multiply with vdpbf16ps
// (bf16_dot_gemm.h), accumulating in f32. It is what llama.cpp does for bf16 weights on a
// CPU (1.8–4.3× the tile path at Llama-3-8B shapes, docs/PERFORMANCE.md), and it changes
// results: rounding x to 8 significant bits gives each product x·w a relative error of up
// to 2^-8, so an output may move by up to 2^-8 · Σ|x·w| (in practice the errors mostly
// cancel, leaving ~2^-9 · sqrt(Σ(x·w)²)), where the f32 paths stay within f32 summation
// error. Off, or on a CPU without AVX-512 BF16 (or with the SIMD level below AVX-512),
// large-m products run on f32 activations as before. m <= 8 always keeps f32 activations.
void set_bf16_activations(bool on);
bool bf16_activations();

// int8_activations (default on, process-wide): quantise each row of X to int8 in blocks and
// run integer dot products on the weights' own codes, at every m (above 8, 8 rows at a time):
//  - GGUF block types (block_gemv.h; blocks of 32, or 256 for the super-block types), as
//    llama.cpp runs them: each ggml type is defined with the activation quantisation its
//    dot product uses. AVX-512 and AVX2.
//  - MCW's Affine packed layouts (packed_weight.h; one block per group of up to 256 slots).
//  - on AVX2, GPTQ checkpoints without act-order, AWQ and compressed-tensors checkpoints
//    (column_packed_gemv.h, row_packed_gemv.h; blocks of up to 256 inside a group; the
//    weights s·(q − z) are not rounded to f16 as their decoders round them).
// The output moves by at most Σ|w|·dx/2 (dx the activation block's scale; plus Σ|w·x|·2^-11
// for the checkpoints) from the exact product. Off, or where no such path exists, products
// run on f32 activations, exact up to f32 summation order, as every other weight type does.
// docs/QUALITY.md has what it costs in KL on the demo models; docs/ALGORITHMS.md the why.
void set_int8_activations(bool on);
bool int8_activations();

// X rows are W.dim(1) long at stride ldx; Y rows at stride ldy (>= W.dim(0)). Throws
// mcw::Error naming the tensor when it is not 2-D, has a dtype the product cannot read, or
// rows that are not a whole number of blocks; std::invalid_argument on a negative m or
// short leading dimensions (programming errors).
void matmul_wt_stored(const float* X, int64_t ldx, const Tensor& W, float* Y, int64_t ldy,
                      int64_t m, const float* bias = nullptr, bool accumulate = false);
inline void matmul_wt_stored(const float* X, const Tensor& W, float* Y, int64_t m,
                             const float* bias = nullptr, bool accumulate = false) {
  matmul_wt_stored(X, W.dim(1), W, Y, W.dim(0), m, bias, accumulate);
}

// The loop both use for a weight that can only be read as rows: Y[m, n] (+)= X · Wᵀ (+ bias)
// with W [n, k] handed over `tile` rows at a time by rows_f32(r0, r1, dst) into the task's
// own scratch, then the f32 GEMM on them. Tiles run in parallel over oneTBB.
void matmul_wt_row_tiles(const float* X, int64_t ldx, int64_t n, int64_t k, int64_t tile,
                         const std::function<void(int64_t, int64_t, float*)>& rows_f32, float* Y,
                         int64_t ldy, int64_t m, const float* bias, bool accumulate);

// The tile matmul_wt_stored uses for an m-row product with W [n, k], in rows.
int64_t row_tile_rows(int64_t m, int64_t n, int64_t k);

// Rows [r0, r1) of a 2-D weight as f32 into dst [(r1 − r0), cols].
void weight_rows_f32(const Tensor& W, int64_t r0, int64_t r1, float* dst);

}  // namespace mcw
