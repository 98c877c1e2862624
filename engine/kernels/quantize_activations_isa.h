// Internal: the AVX-512 pieces of quantize_activations (block_gemv.cpp), one block of n
// values (a multiple of 16) at a time. Only to be called where the CPU has AVX-512 BW.
#pragma once
#include <cstdint>

namespace mcw::block_detail {

// max |v| into amax; false when a value is not finite.
bool block_amax_avx512(const float* v, int64_t n, float& amax);
// q[i] = lround(v[i]·id) (|v·id| <= 127), and the sum of every 16 of them.
void block_round_avx512(const float* v, int64_t n, float id, int8_t* q, int16_t* qsum16);

}  // namespace mcw::block_detail
