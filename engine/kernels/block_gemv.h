// Products with ggml block-type weights (GGUF's Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q2_K … Q6_K, IQ4_NL, IQ4_XS) on integer dot products, the way llama.cpp computes them:
// Y[m, n] (+)= X[m, k] · Wᵀ (+ bias[n]) for W [n, k] in its own blocks (usually a view of a
// mapped GGUF) and f32 activations, m <= 8 rows at a time.
//
// Each row of x is quantised once per product to int8 with one scale max|x| / 127 per block
// of 32 values for the 32-value types and of 256 for the super-block types (rounded to
// nearest; ggml's Q8_0 and Q8_K), with the sum of each 16 rounded values.
// The portable path (the reference the tests hold the others to) rewrites each weight row
// into unsigned 8-bit codes u with an f32 scale a and offset b per 16 values, w = a·u + b
// (every ggml type fits: Q4_K's d·sc·q − dmin·m, Q6_K's d·sc·(q − 32), Q8_0's d·q as
// d·(q + 128) − 128·d, ...), so y = Σ_groups a·dx·Σ u·q + b·Σ x̂. The AVX-512 paths are
// fused, as ggml's kernels are: the K-quants on vpmaddubsw/vpmaddwd with the sub-block
// scales in int32 (block_gemv_kquant_avx512.cpp, AVX-512 BW), the 32-value types and
// IQ4_XS two blocks per vpdpbusd (block_gemv_legacy_avx512.cpp, AVX-512 VNNI), each with
// the activations stored once per product in the order its codes come out of their bytes.
// The result is the product of the decoded weights with the rounded activations x̂ = dx·q
// (up to f32 rounding), so it differs from the exact product by Σ_i w_i·(x̂_i − x_i):
// |Δy| <= Σ_i |w_i|·dx_i/2. `matmul_wt_stored` uses it for block weights when int8
// activations are on and a SIMD path exists (stored_matmul.h); the f32 path (decode to
// f32, f32 product) stays the exact one.
#pragma once
#include <tbb/parallel_for.h>

#include <cstdint>
#include <vector>

#include "engine/core/dtype.h"

namespace mcw {

constexpr int64_t kBlockGemvMaxM = 8;
constexpr int64_t kActivationBlock = 32;  // values per int8 activation scale

// The types this product reads: every block type (dtype.h).
bool block_gemv_reads(DType t);
// True when this CPU (at the current SIMD level) runs the product for t on a SIMD path:
// AVX-512 BW for the K-quants, AVX-512 VNNI for the others. The portable path is the
// reference the tests hold the SIMD paths to; it is slower than decoding f32 tiles.
bool block_gemv_accelerated(DType t);

// One row of x as the product uses it; k a multiple of the block.
struct Int8Activations {
  int64_t block = kActivationBlock;  // values per scale
  std::vector<int8_t> q;             // [k]: round(x / d), |q| <= 127
  std::vector<float> d;              // [k / block]: max |x| / 127 of each block (0: all zero)
  std::vector<float> d16;            // [k / 16]: d of the block each 16 values lie in
  std::vector<float> sum16;          // [k / 16]: d · Σ q over each 16 values (the rounded x's sum)
  std::vector<int16_t> qsum16;       // [k / 16]: Σ q over each 16 values
  std::vector<float> d32, sum32;     // [k / 32]: d and sum16 of each 32 values
  // q in the order a weight type's codes come out of its bytes, for the fused kernels (empty
  // for types whose order is the natural one). Pieces of 16 values: per 64, 0 2 1 3 for the
  // nibble types (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS: two blocks' low nibbles, then their
  // high ones); per 256, 0 1 4 5 2 3 6 7 and the same +8 for Q2_K … Q5_K. A last 32 values
  // that do not fill a period stay in place.
  std::vector<int8_t> q_order;
};
// The activation block a weight type is multiplied with: 32 for the 32-value types (ggml's
// Q8_0), 256 for the super-block types (ggml's Q8_K).
int64_t activation_block(DType t);
// block: a multiple of 32 that divides k (MCW's own layouts use their group; block_gemv 32
// or 256).
void quantize_activations(const float* x, int64_t k, int64_t block, Int8Activations& out);
// The activation block of a layout whose scales change every `group` inputs: the largest
// multiple of `step` up to 256 (ggml's Q8_K) that divides the group, so that a block never
// straddles two groups; 0 when there is none.
int64_t activation_block_in(int64_t group, int64_t step = 32);

// A row of x rounded as quantize_activations rounds it, its int8 values rearranged in the
// order a layout's kernel meets its codes and read four at a time as int32 words (one
// vpmaddubsw lane each): GPTQ, AWQ and compressed-tensors layers (column_packed_gemv.h,
// row_packed_gemv.h).
struct PackedActivations {
  int64_t block = 0;
  std::vector<int32_t> xp;    // [k / 4]
  std::vector<float> d, sum;  // per block: scale, and the rounded values' sum d·Σq
};
// Rows [0, m) of X (at stride ldx, k each) so rounded, in parallel; input i's value goes to
// byte position(i) of xp (a permutation of 0 .. k − 1).
template <class Position>
std::vector<PackedActivations> quantize_activations_to(const float* X, int64_t ldx, int64_t m,
                                                       int64_t k, int64_t block,
                                                       Position position) {
  std::vector<PackedActivations> rows(static_cast<size_t>(m));
  tbb::parallel_for(int64_t(0), m, [&](int64_t r) {
    Int8Activations q;
    quantize_activations(X + r * ldx, k, block, q);
    PackedActivations& out = rows[static_cast<size_t>(r)];
    out.block = block;
    out.d = q.d;
    out.sum.assign(static_cast<size_t>(k / block), 0.0f);
    for (int64_t j = 0; j < k / 16; ++j)
      out.sum[static_cast<size_t>(j * 16 / block)] += q.sum16[static_cast<size_t>(j)];
    out.xp.resize(static_cast<size_t>(k / 4));
    auto* bytes = reinterpret_cast<int8_t*>(out.xp.data());
    for (int64_t i = 0; i < k; ++i) bytes[position(i)] = q.q[static_cast<size_t>(i)];
  });
  return rows;
}

// Fills x.q_order for weight type t (after quantize_activations).
void order_activations(DType t, Int8Activations& x);

// Rows of W are dtype_bytes(t, k) bytes apart; k a whole number of t's blocks; X rows at
// ldx >= k; Y rows at ldy >= n. Any m: every row of x is quantised once, and more than
// kBlockGemvMaxM rows run in chunks of that many over tiles of W's rows that stay in cache
// (prefill, as llama.cpp runs these types at every batch size). std::invalid_argument on a
// type that is not a block type or sizes that do not fit.
void matmul_wt_blocks(DType t, const float* X, int64_t ldx, const void* W, float* Y, int64_t ldy,
                      int64_t m, int64_t n, int64_t k, const float* bias = nullptr,
                      bool accumulate = false);

}  // namespace mcw
