// The lookup-table layout built from a CompressedTensor, the preparation of x (rounding and
// tables) and the driver of the product: path choice, passes of up to 8 rows of x, threads.
#include "engine/kernels/lut_gemv.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string_view>

#include "engine/core/error.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/lut_gemv_isa.h"

namespace mcw {
namespace {

using namespace lut_detail;

constexpr int64_t kMaxM = 8;
// |S| <= 15·127·group_size must fit int32 (the kernels' per-group sums): group_size <= 2^20.
constexpr int64_t kMaxGroup = int64_t(1) << 20;

bool cpu_has_vbmi() {
#if defined(__x86_64__)
  static const bool vbmi = [] {
    __builtin_cpu_init();
    return bool(__builtin_cpu_supports("avx512vbmi"));
  }();
  return vbmi;
#else
  return false;
#endif
}

const LutIsa& current_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.level == SimdLevel::Avx512 && f.avx512vnni && cpu_has_vbmi()) return lut_isa_avx512();
  // AVX-512 without VBMI or VNNI (Skylake-X, Cascade Lake) takes the AVX2 path.
  if (f.level >= SimdLevel::Avx2) return lut_isa_avx2();
  return lut_isa_generic();
}

// Round to nearest, ties to even, for |v| < 2^22 (here |v| <= 127.5): adding and removing
// 1.5·2^23 leaves the integer part, without a libm call per activation. (The AVX-512 path's
// vcvtps2dq rounds the same way.)
inline float round_even(float v) { return (v + 0x1.8p23f) - 0x1.8p23f; }

}  // namespace

void lut_quantize_activations(const float* x, int64_t k, int64_t group, LutActivations a, int8_t* q,
                              float* dx, float* sx) {
  if (group <= 0 || k % group)
    throw std::invalid_argument("lut_quantize_activations: k must be whole groups");
  const float top = float(activation_max(a == LutActivations::Int8));
  for (int64_t g = 0; g < k / group; ++g) {
    const float* v = x + g * group;
    int8_t* o = q + g * group;
    float amax = 0;
    bool finite = true;
    for (int64_t i = 0; i < group; ++i) {
      amax = std::max(amax, std::fabs(v[i]));
      finite = finite && std::isfinite(v[i]);
    }
    // As quantize_activations: a non-finite input makes the group's scale NaN (so the
    // outputs are NaN, as the f32 product's would be); a group too small for 1 / d to be
    // finite counts as zeros.
    float d = finite ? amax / top : std::nanf(""), id = d > 0 ? 1.0f / d : 0.0f;
    if (!std::isfinite(id)) id = 0;
    if (finite && id == 0) d = 0;
    int32_t sum = 0;
    for (int64_t i = 0; i < group; ++i) {
      const float r = finite ? round_even(v[i] * id) : 0.0f;
      // v·(1/d) can exceed A by an ulp, never by the half that would round it past A; the
      // clamp keeps the table bounds a fact of the code rather than of float rounding.
      o[i] = int8_t(std::clamp(r, -top, top));
      sum += o[i];
    }
    dx[g] = d;
    sx[g] = d * float(sum);
  }
}

const char* lut_gemv_path() { return current_isa().name; }

namespace {
// MCW_LUT=0 starts with the LUT off (to measure the Affine layout beside it).
std::atomic<bool> g_lut_kernels{[] {
  const char* v = std::getenv("MCW_LUT");
  return !(v && std::string_view(v) == "0");
}()};
}  // namespace
void set_lut_kernels(bool on) { g_lut_kernels.store(on, std::memory_order_relaxed); }
bool lut_kernels() { return g_lut_kernels.load(std::memory_order_relaxed); }

std::string LutWeight::unsupported(const CompressedTensor& t) {
  if (t.coding != WeightCoding::Affine) return "not affine codes";
  if (t.bits < 1 || t.bits > 4) return "bits outside 1..4";
  if (!t.g_idx.empty()) return "act-order g_idx";
  if (t.group_size <= 0 || t.group_size % kSuperchunk || t.group_size > kMaxGroup)
    return "group size not a multiple of 32 up to 2^20";
  if (!t.mask.empty()) return "sparsity mask";
  if (!t.outlier_index.empty()) return "outliers";
  if (!t.input_scale.empty()) return "input scale";
  return {};
}

LutWeight LutWeight::from_compressed(const CompressedTensor& t, LutActivations activations) {
  if (std::string why = unsupported(t); !why.empty())
    throw Error(t.name, "lookup-table layout: " + why);
  if (t.rows < 0 || t.cols <= 0 || t.rows > INT64_MAX / t.cols) throw Error(t.name, "bad shape");
  const int64_t G = (t.cols + t.group_size - 1) / t.group_size;
  if (t.codes.size() * 8 / uint64_t(t.bits) < uint64_t(t.rows * t.cols))
    throw Error(t.name, "lookup-table layout: too few code bytes");
  if (t.scales.size() != size_t(t.rows * G) || (!t.symmetric && t.zeros.size() != t.scales.size()))
    throw Error(t.name, "lookup-table layout: scale or zero count does not match rows × groups");

  LutWeight w;
  w.name_ = t.name;
  w.rows_ = t.rows, w.cols_ = t.cols, w.bits_ = t.bits;
  w.group_size_ = t.group_size, w.groups_ = G;
  w.activations_ = activations;
  const int64_t width = G * t.group_size, supers = width / kSuperchunk;
  const int64_t blocks = (t.rows + kBlockRows - 1) / kBlockRows;
  const int64_t spg = t.group_size / kSuperchunk, gbytes = group_bytes(t.bits, spg);
  const int64_t block_bytes = G * gbytes;
  w.lines_.assign(size_t(blocks * block_bytes / 64), Line{});
  tbb::parallel_for(int64_t(0), blocks, [&](int64_t b) {
    // The block's codes, one row after another, zero past cols and past rows.
    std::vector<uint8_t> q(size_t(kBlockRows * width), 0);
    const int64_t rows_here = std::min<int64_t>(kBlockRows, t.rows - b * kBlockRows);
    for (int64_t rr = 0; rr < rows_here; ++rr)
      unpack_codes_from(t.codes.data(), size_t((b * kBlockRows + rr) * t.cols), size_t(t.cols),
                        t.bits, q.data() + rr * width);
    uint8_t* dst = reinterpret_cast<uint8_t*>(w.lines_.data()) + b * block_bytes;
    for (int64_t s = 0; s < supers; ++s)
      for (int k = 0; k < records(t.bits); ++k) {
        const RecordKind rk = record_kind(t.bits, k);
        uint8_t* rec = dst + s / spg * gbytes + ((s % spg) * records(t.bits) + k) * kRecordBytes;
        for (int rr = 0; rr < kBlockRows; ++rr)
          for (int j = 0; j < 4; ++j)
            for (int hi = 0; hi < 2; ++hi) {
              const int table = nibble_table(rk, j, hi), plane = nibble_plane(rk, j);
              const uint8_t* in = q.data() + rr * width + s * kSuperchunk + 4 * table;
              unsigned index = 0;
              for (int i = 0; i < 4; ++i) index |= unsigned((in[i] >> plane) & 1) << i;
              rec[4 * rr + j] = uint8_t(rec[4 * rr + j] | index << (4 * hi));
            }
      }
    for (int64_t g = 0; g < G; ++g) {
      float* scale =
          reinterpret_cast<float*>(dst + g * gbytes + spg * records(t.bits) * kRecordBytes);
      for (int64_t rr = 0; rr < rows_here; ++rr) {
        const size_t src = size_t((b * kBlockRows + rr) * G + g);
        scale[rr] = t.scales[src];
        scale[kBlockRows + rr] = -t.scales[src] * t.zero_point(src);
      }
    }
  });
  return w;
}

void LutWeight::dequantize_rows(int64_t r0, int64_t r1, float* dst) const {
  if (r0 < 0 || r1 < r0 || r1 > rows_)
    throw std::invalid_argument("LutWeight::dequantize_rows: row range outside the matrix");
  const int64_t width = groups_ * group_size_, spg = group_size_ / kSuperchunk;
  const int64_t gbytes = group_bytes(bits_, spg), block_bytes = groups_ * gbytes;
  const auto* base = reinterpret_cast<const uint8_t*>(lines_.data());
  std::vector<uint8_t> q(static_cast<size_t>(width));
  for (int64_t r = r0; r < r1; ++r) {
    // The packer's walk backwards: each nibble gives one plane's bit of 4 inputs.
    const int64_t b = r / kBlockRows, rr = r % kBlockRows;
    const uint8_t* block = base + b * block_bytes;
    std::fill(q.begin(), q.end(), uint8_t(0));
    for (int64_t s = 0; s < width / kSuperchunk; ++s)
      for (int k = 0; k < records(bits_); ++k) {
        const RecordKind rk = record_kind(bits_, k);
        const uint8_t* rec =
            block + s / spg * gbytes + ((s % spg) * records(bits_) + k) * kRecordBytes;
        for (int j = 0; j < 4; ++j)
          for (int hi = 0; hi < 2; ++hi) {
            const unsigned index = (rec[4 * rr + j] >> (4 * hi)) & 15u;
            uint8_t* in = q.data() + s * kSuperchunk + 4 * nibble_table(rk, j, hi);
            for (int i = 0; i < 4; ++i)
              in[i] = uint8_t(in[i] | ((index >> i) & 1u) << nibble_plane(rk, j));
          }
      }
    float* out = dst + (r - r0) * cols_;
    for (int64_t g = 0; g < groups_; ++g) {
      const auto* p =
          reinterpret_cast<const float*>(block + g * gbytes + spg * records(bits_) * kRecordBytes);
      const float scale = p[rr], offset = p[kBlockRows + rr];
      for (int64_t c = g * group_size_; c < std::min(cols_, (g + 1) * group_size_); ++c)
        out[c] = scale * float(q[size_t(c)]) + offset;
    }
  }
}

void LutWeight::matmul(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
                       const float* bias, bool accumulate) const {
  if (m < 0) throw std::invalid_argument("LutWeight::matmul: negative m");
  if (ldx < cols_ || ldy < rows_)
    throw std::invalid_argument("LutWeight::matmul: leading dimension too small");
  if (bits_ == 0) throw Error(name_, "LutWeight::matmul on an empty weight");
  for (int64_t i0 = 0; i0 < m; i0 += kMaxM)
    matmul_upto8(X + i0 * ldx, ldx, Y + i0 * ldy, ldy, std::min(kMaxM, m - i0), bias, accumulate);
}

void LutWeight::matmul_upto8(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
                             const float* bias, bool accumulate) const {
  if (rows_ == 0) return;
  const int64_t width = groups_ * group_size_, supers = width / kSuperchunk;
  const LutIsa& isa = current_isa();
  const bool split = activations_ == LutActivations::Int8;
  const int64_t ld_tables = supers * table_bytes(split);
  // Every byte is written by prepare: no zero fill (115 KiB per row of x at 14336 inputs).
  const std::unique_ptr<int8_t[]> tables(new int8_t[size_t(m * ld_tables)]);
  std::vector<float> dx(static_cast<size_t>(m * groups_)), sx(dx.size());
  auto prepare_row = [&](int64_t i) {
    const float* x = X + i * ldx;
    std::vector<float> padded;
    if (cols_ < width) {  // a last group only partly filled: zeros past cols
      padded.assign(static_cast<size_t>(width), 0.0f);
      std::copy(x, x + cols_, padded.begin());
      x = padded.data();
    }
    isa.prepare(x, width, group_size_, split, tables.get() + i * ld_tables, dx.data() + i * groups_,
                sx.data() + i * groups_);
  };
  // One row of x is prepared where it is (~16 µs at 14336 inputs on AVX-512); several in
  // parallel, since the product waits for all of them.
  if (m == 1)
    prepare_row(0);
  else
    tbb::parallel_for(int64_t(0), m, prepare_row);
  const int64_t blocks = (rows_ + kBlockRows - 1) / kBlockRows;
  const int64_t spg = group_size_ / kSuperchunk, gbytes = group_bytes(bits_, spg);
  const LutView view{
      bits_, rows_,  blocks,           groups_,
      spg,   gbytes, groups_ * gbytes, reinterpret_cast<const uint8_t*>(lines_.data())};
  const LutX x{split, tables.get(), ld_tables, dx.data(), sx.data(), groups_, m};
  const GemvOutput y{Y, ldy, bias, accumulate};
  const LutRows rows = isa.rows;
  // Tasks of at least ~64 KiB of codes, in multiples of 4 blocks (the kernels' tile at m = 1).
  const int64_t grain = std::max<int64_t>(4, ((int64_t(64) << 10) / view.block_bytes + 3) / 4 * 4);
  if (blocks <= grain) return rows(view, x, 0, blocks, y);
  const int64_t tasks = (blocks + grain - 1) / grain;
  tbb::parallel_for(int64_t(0), tasks, [&](int64_t k) {
    rows(view, x, k * grain, std::min(blocks, (k + 1) * grain), y);
  });
}

std::string LutWeight::describe() const {
  return "lut int" + std::to_string(bits_) + " g" + std::to_string(group_size_) +
         (activations_ == LutActivations::Int8 ? ", x int8" : ", x int6");
}

uint64_t LutWeight::weight_bytes() const { return lines_.size() * sizeof(Line); }

}  // namespace mcw
