// Tiles of a stored weight converted to f32 scratch, then the f32 GEMM: see the header.
#include "engine/kernels/stored_matmul.h"

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <vector>

#include "engine/core/error.h"
#include "engine/kernels/bf16_dot_gemm.h"
#include "engine/kernels/block_gemv.h"
#include "engine/kernels/column_packed_gemv.h"
#include "engine/kernels/row_packed_gemv.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/half_gemv.h"

namespace mcw {
namespace {

constexpr int64_t kSmallM = 8;
static_assert(kSmallM <= kHalfGemvMaxM);

std::atomic<bool> g_bf16_activations{false};
std::atomic<bool> g_int8_activations{true};

void check_weight(const Tensor& W) {
  if (W.ndim() != 2) throw Error(W.name(), "a linear weight must be 2-D, not " + shape_string(W.shape()));
  if (!stored_matmul_reads(W.dtype()))
    throw Error(W.name(), "no matrix product reads dtype " + std::string(dtype_name(W.dtype())));
  if (W.dim(1) % dtype_info(W.dtype()).block)
    throw Error(W.name(), "rows of " + std::to_string(W.dim(1)) + " values are not whole " +
                              std::string(dtype_name(W.dtype())) + " blocks");
}

}  // namespace

void set_bf16_activations(bool on) { g_bf16_activations.store(on, std::memory_order_relaxed); }
bool bf16_activations() { return g_bf16_activations.load(std::memory_order_relaxed); }
void set_int8_activations(bool on) { g_int8_activations.store(on, std::memory_order_relaxed); }
bool int8_activations() { return g_int8_activations.load(std::memory_order_relaxed); }

bool stored_matmul_reads(DType t) {
  // The float types, every block type (each decodes row by row: blocks.h), and weights
  // that a decoder presents (Packed: checkpoint layouts such as GPTQ's).
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || is_block_type(t) ||
         t == DType::Packed;
}

void weight_rows_f32(const Tensor& W, int64_t r0, int64_t r1, float* dst) {
  const int64_t k = W.dim(1);
  W.to_f32(dst, size_t(r0 * k), size_t((r1 - r0) * k));
}

void matmul_wt_stored(const float* X, int64_t ldx, const Tensor& W, float* Y, int64_t ldy,
                      int64_t m, const float* bias, bool accumulate) {
  check_weight(W);
  const int64_t n = W.dim(0), k = W.dim(1);
  if (m < 0) throw std::invalid_argument("matmul_wt_stored: negative m");
  if (W.dtype() == DType::F32)
    return matmul_wt_strided(X, ldx, W.as<float>(), k, Y, ldy, m, n, k, bias, accumulate);
  if (ldx < k || ldy < n) throw std::invalid_argument("matmul_wt_stored: leading dimension too small");
  if (m == 0 || n == 0) return;
  const bool half = W.dtype() == DType::BF16 || W.dtype() == DType::F16;
  const auto* bits = static_cast<const uint16_t*>(W.data());
  // Decode: 16-bit rows widened in registers, no scratch, half the bytes of an f32 tile.
  if (half && m <= kSmallM)
    return gemv_wt_half(W.dtype() == DType::BF16 ? HalfFormat::BF16 : HalfFormat::F16, X, ldx,
                        bits, k, Y, ldy, m, n, k, bias, accumulate);
  if (is_block_type(W.dtype()) && int8_activations() && block_gemv_accelerated(W.dtype()))
    return matmul_wt_blocks(W.dtype(), X, ldx, W.data(), Y, ldy, m, n, k, bias, accumulate);
  if (const TensorDecoder* d = W.decoder()) {
    const ColumnPackedCodes* codes = d->column_packed();  // GPTQ/AWQ: codes read in place
    if (codes && gemv_column_packed(*codes, X, ldx, Y, ldy, m, bias, accumulate)) return;
    const RowPackedCodes* rows = d->row_packed();  // compressed-tensors
    if (rows && gemv_row_packed(*rows, *d, X, ldx, Y, ldy, m, bias, accumulate)) return;
    if (m <= kSmallM && d->multiply(X, ldx, Y, ldy, m, bias, accumulate)) return;
  }
  if (W.dtype() == DType::BF16 && bf16_activations() && bf16_dot_gemm_available())
    return matmul_wt_bf16_dot(X, ldx, bits, k, Y, ldy, m, n, k, bias, accumulate);
  int64_t tile = row_tile_rows(m, n, k);
  if (const TensorDecoder* d = W.decoder()) {  // whole cache lines of the packed layout
    const int64_t g = std::max<int64_t>(1, d->row_granularity());
    tile = std::min(n, (tile + g - 1) / g * g);
  }
  matmul_wt_row_tiles(
      X, ldx, n, k, tile, [&](int64_t r0, int64_t r1, float* dst) { weight_rows_f32(W, r0, r1, dst); },
      Y, ldy, m, bias, accumulate);
}

int64_t row_tile_rows(int64_t m, int64_t n, int64_t k) {
  // Small m: tiles of ~32 KiB of f32 (L1/L2-resident while m rows of x pass over them).
  // Large m: ~1 MiB, enough rows for the GEMM's register blocking to pay off.
  const int64_t target = m <= kSmallM ? (int64_t(1) << 13) : (int64_t(1) << 18);
  return std::clamp<int64_t>(target / std::max<int64_t>(k, 1), 4, std::max<int64_t>(n, 4));
}

void matmul_wt_row_tiles(const float* X, int64_t ldx, int64_t n, int64_t k, int64_t tile,
                         const std::function<void(int64_t, int64_t, float*)>& rows_f32, float* Y,
                         int64_t ldy, int64_t m, const float* bias, bool accumulate) {
  const int64_t tiles = (n + tile - 1) / tile;
  static tbb::enumerable_thread_specific<std::vector<float>> scratch;
  tbb::parallel_for(int64_t(0), tiles, [&](int64_t t) {
    const int64_t r0 = t * tile, r1 = std::min(n, r0 + tile);
    // Isolation keeps a thread waiting inside the GEMM from taking another tile of this
    // loop, which would reuse its scratch.
    tbb::this_task_arena::isolate([&] {
      std::vector<float>& w = scratch.local();
      w.resize(size_t(tile * k));
      rows_f32(r0, r1, w.data());
      matmul_wt_strided(X, ldx, w.data(), k, Y + r0, ldy, m, r1 - r0, k, bias ? bias + r0 : nullptr,
                        accumulate);
    });
  });
}

}  // namespace mcw
