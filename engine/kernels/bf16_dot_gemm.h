// Large-m products of bf16 weights with AVX-512 BF16 (vdpbf16ps): Y[m, n] (+)= X[m, k] · Wᵀ
// (+ bias[n]) for W [n, k] in bf16 as its file stores it. X is rounded to bf16 (round to
// nearest even) once per call; every instruction multiplies 32 bf16 pairs exactly and
// adds them into 16 f32 sums, so the only loss beyond f32 summation is the rounding of x
// (a relative error of at most 2^-8 per product). Twice the multiply rate of the f32 GEMM
// and no f32 copy of W: weights are read straight from the mapping, rows along k, and the
// accumulators are reduced across lanes once per output.
//
// Used by matmul_wt_stored only when bf16_activations() is on (stored_matmul.h); callable
// only when bf16_dot_gemm_available().
//
// On a CPU with AMX-BF16 (and a kernel that grants its tile state) the same product runs on
// AMX tiles (TDPBF16PS: 16 × 16 outputs per instruction) when m >= 16, n % 16 == 0 and
// k % 32 == 0: the same bf16 rounding of x, exact pair products, f32 sums in another order
// (so results are not bit-identical to the AVX-512 path, and stay within the same bound).
#pragma once
#include <cstdint>

namespace mcw {

// True when the CPU has AVX-512 BF16 and cpu_features().level is Avx512.
bool bf16_dot_gemm_available();

// X rows at ldx >= k, W rows (bf16 bits) at ldw >= k, Y rows at ldy >= n. Throws
// std::logic_error when !bf16_dot_gemm_available(); std::invalid_argument on bad sizes.
void matmul_wt_bf16_dot(const float* X, int64_t ldx, const uint16_t* W, int64_t ldw, float* Y,
                        int64_t ldy, int64_t m, int64_t n, int64_t k, const float* bias = nullptr,
                        bool accumulate = false);

// Whether products run on AMX where they can (default: when the CPU and the OS allow it,
// unless the environment sets MCW_AMX=0); off sends them to the AVX-512 BF16 kernel, for
// comparisons. Process-wide.
bool amx_bf16_usable();
void set_amx_bf16(bool on);

namespace bf16_dot_detail {
// Outputs Y[i, j] for i in [i0, i1), j in [j0, j1): Xb holds X rounded to bf16 at stride
// ldxb (a multiple of 32, zero beyond k). Defined only on x86-64.
void block(const uint16_t* Xb, int64_t ldxb, const uint16_t* W, int64_t ldw, int64_t k,
           float* Y, int64_t ldy, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
           const float* bias, bool accumulate);

// AMX (bf16_amx_gemm.cpp). Asks Linux for the tile state; true when granted.
bool amx_bf16_permitted();
// Xt: rows [i0, i1) of Xb in the tile layout amx_block reads, 16 rows × 32 k per 1 KiB
// tile, blocks of 16 rows (the last padded with zero rows), k steps inside a block.
void pack_x_tiles(const uint16_t* Xb, int64_t ldxb, int64_t i0, int64_t i1, uint16_t* Xt);
// Outputs Y[i, j] for all m rows and j in [j0, j1) (multiples of 16), k = ldxb (a multiple
// of 32) from the packed X.
void amx_block(const uint16_t* Xt, int64_t ldxb, int64_t m, const uint16_t* W, int64_t ldw,
               float* Y, int64_t ldy, int64_t j0, int64_t j1, const float* bias, bool accumulate);
}  // namespace bf16_dot_detail

}  // namespace mcw
