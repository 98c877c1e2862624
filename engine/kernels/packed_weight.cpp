// Building the packed layouts from a CompressedTensor (validated first: its counts come
// from files), and the driver of the products: x preparation, threading, large-m tiles.
#include "engine/kernels/packed_weight.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/lut_gemv.h"
#include "engine/kernels/packed_gemv_isa.h"
#include "engine/kernels/stored_matmul.h"

namespace mcw {
namespace {

using namespace packed_detail;

constexpr int64_t kSmallM = 8;

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

const PackedGemvIsa& current_isa() {
  switch (cpu_features().level) {
    case SimdLevel::Avx512:
      return packed_isa_avx512();
    case SimdLevel::Avx2:
      return packed_isa_avx2();
    default:
      return packed_isa_generic();
  }
}

// Every count a layout is built from, against the sizes actually present.
void validate(const CompressedTensor& t) {
  auto fail = [&](const std::string& what) { throw Error(t.name, "compressed weight: " + what); };
  if (t.rows < 0 || t.cols < 0 || (t.cols > 0 && t.rows > INT64_MAX / t.cols) || t.cols > INT32_MAX)
    fail("bad shape");
  const uint64_t n = uint64_t(t.rows * t.cols);
  switch (t.coding) {
    case WeightCoding::Dense:
      if (t.dense.dtype() != DType::F32 || uint64_t(t.dense.numel()) != n)
        fail("dense values do not match rows × cols");
      break;
    case WeightCoding::Affine:
    case WeightCoding::Codebook: {
      if (t.bits < 1 || t.bits > 8) fail("bits outside 1..8");
      if (n > t.codes.size() * 8 / uint64_t(t.bits)) fail("too few code bytes");
      if (t.g_idx.empty()) {
        if (t.group_size <= 0 || t.group_size > (int64_t(1) << 40))
          fail("group size outside 1..2^40");
      } else {
        if (int64_t(t.g_idx.size()) != t.cols) fail("g_idx does not have one entry per column");
        for (int32_t g : t.g_idx)
          if (g < 0) fail("negative g_idx entry");
      }
      const uint64_t per_row = uint64_t(t.groups());
      if (t.rows > 0 && per_row > UINT64_MAX / uint64_t(t.rows)) fail("too many groups");
      const uint64_t ng = per_row * uint64_t(t.rows);
      if (t.coding == WeightCoding::Affine) {
        if (t.scales.size() != ng) fail("scale count does not match rows × groups");
        if (!t.symmetric && t.zeros.size() != ng) fail("zero count does not match rows × groups");
      } else if (t.codebook.size() / (size_t(1) << t.bits) != ng ||
                 t.codebook.size() % (size_t(1) << t.bits)) {
        fail("codebook size does not match rows × groups × 2^bits");
      }
      break;
    }
    case WeightCoding::LowRank:
      if (t.rank < 0 || t.lr_a.dtype() != DType::F32 || t.lr_b.dtype() != DType::F32 ||
          t.lr_a.numel() != t.rows * t.rank || t.lr_b.numel() != t.rank * t.cols)
        fail("low-rank factors do not match rows, rank and cols");
      break;
  }
  if (!t.mask.empty() && t.mask.size() < (n + 7) / 8) fail("mask shorter than rows × cols bits");
  if (t.outlier_index.size() != t.outlier_value.size()) fail("outlier index/value counts differ");
  for (uint32_t i : t.outlier_index)
    if (i >= n) fail("outlier index outside the matrix");
  if (!t.input_scale.empty()) {
    if (int64_t(t.input_scale.size()) != t.cols)
      fail("input scale does not have one entry per column");
    for (float v : t.input_scale)
      if (!std::isfinite(v) || v == 0.0f) fail("input scale entry is not finite and non-zero");
  }
}

// Code of weight i of a pack_codes bitstream (bits <= 8 span at most two bytes).
uint8_t code_at(const std::vector<uint8_t>& packed, uint64_t i, int bits) {
  const uint64_t bit = i * uint64_t(bits), byte = bit >> 3;
  unsigned v = packed[byte];
  if (byte + 1 < packed.size()) v |= unsigned(packed[byte + 1]) << 8;
  return uint8_t((v >> (bit & 7)) & ((1u << bits) - 1));
}

}  // namespace

const char* packed_gemv_path() {
  const CpuFeatures& f = cpu_features();
  if (f.level != SimdLevel::Avx2 || f.vnni256 == Vnni256::None) return current_isa().name;
  return f.vnni256 == Vnni256::Vex ? "avx2+avx-vnni" : "avx2+avx512vl-vnni";
}

int64_t affine_activation_block(int64_t group_slots) {
  if (group_slots <= 0 || group_slots % kUnit)
    throw std::invalid_argument("affine_activation_block: not a whole number of units");
  return activation_block_in(group_slots, kUnit);
}

PackedWeight PackedWeight::from_f32(const float* w, int64_t rows, int64_t cols, bool as_f16,
                                    std::string name) {
  if (rows < 0 || cols < 0) throw std::invalid_argument("PackedWeight::from_f32: negative size");
  PackedWeight p;
  p.name_ = std::move(name);
  p.rows_ = rows, p.cols_ = cols;
  if (!as_f16) {
    p.kind_ = PackedKind::F32;
    p.f32_.assign(w, w + rows * cols);
    return p;
  }
  p.kind_ = PackedKind::F16;
  p.padded_cols_ = round_up(cols, kUnit);
  p.half_.assign(size_t(rows * p.padded_cols_), 0);
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    f32_to_f16_row(w + r * cols, p.half_.data() + r * p.padded_cols_, size_t(cols));
  });
  return p;
}

PackedWeight PackedWeight::from_stored(const Tensor& w) {
  if (w.ndim() != 2 || !stored_matmul_reads(w.dtype()) || w.dim(1) % dtype_info(w.dtype()).block)
    throw Error(w.name(), "cannot be used as stored: " + std::string(dtype_name(w.dtype())) + " " +
                              shape_string(w.shape()));
  PackedWeight p;
  p.name_ = w.name();
  p.rows_ = w.dim(0), p.cols_ = w.dim(1);
  p.kind_ = PackedKind::Stored;
  p.stored_ = w;
  return p;
}

PackedWeight PackedWeight::fallback_f16(const CompressedTensor& t, std::string why) {
  const Tensor w = t.dequantize();
  PackedWeight p = from_f32(w.as<float>(), t.rows, t.cols, true, t.name);
  p.why_ = std::move(why);
  return p;
}

PackedWeight PackedWeight::from_compressed(const CompressedTensor& t) {
  validate(t);
  if (t.input_scale.empty()) return pack_unscaled(t);
  // The layout is built from the codes of W·diag(s) (every fallback too: its dequantize()
  // is taken without s), and s is applied to the input at run time.
  CompressedTensor codes_only = t;
  codes_only.input_scale.clear();
  PackedWeight p = pack_unscaled(codes_only);
  p.input_scale_ = t.input_scale;
  return p;
}

PackedWeight PackedWeight::pack_unscaled(const CompressedTensor& t) {
  const bool outliers = !t.outlier_index.empty();
  switch (t.coding) {
    case WeightCoding::Affine:
      if (!t.mask.empty()) return fallback_f16(t, "affine codes with a sparsity mask");
      if (t.bits <= 3 && lut_kernels() && std::string_view(lut_gemv_path()) == "avx512" &&
          LutWeight::unsupported(t).empty()) {
        PackedWeight p;
        p.name_ = t.name, p.kind_ = PackedKind::Lut;
        p.rows_ = t.rows, p.cols_ = t.cols, p.bits_ = t.bits;
        p.symmetric_ = t.symmetric, p.group_size_ = t.group_size;
        p.lut_ = std::make_shared<const LutWeight>(LutWeight::from_compressed(t));
        return p;
      }
      if (t.bits != 2 && t.bits != 3 && t.bits != 4 && t.bits != 8)
        return fallback_f16(t, "no kernel for " + std::to_string(t.bits) + "-bit codes");
      return pack_affine(t);
    case WeightCoding::Codebook:
      return fallback_f16(t, "codebook");
    case WeightCoding::LowRank: {
      if (!t.mask.empty() || outliers) return fallback_f16(t, "low-rank with mask or outliers");
      PackedWeight p;
      p.name_ = t.name, p.kind_ = PackedKind::LowRank;
      p.rows_ = t.rows, p.cols_ = t.cols, p.rank_ = t.rank;
      p.a_.assign(t.lr_a.as<float>(), t.lr_a.as<float>() + t.rows * t.rank);
      p.b_.assign(t.lr_b.as<float>(), t.lr_b.as<float>() + t.rank * t.cols);
      return p;
    }
    case WeightCoding::Dense:
      if (outliers) return fallback_f16(t, "dense with outliers");
      if (t.mask.empty()) return fallback_f16(t, "");
      if (t.nm_n == 2 && t.nm_m == 4) return pack_sparse24(t, t.dequantize());
      return fallback_f16(t, "unstructured sparsity is not exploited");
  }
  throw Error(t.name, "compressed weight: unknown coding");
}

PackedWeight PackedWeight::pack_affine(const CompressedTensor& t) {
  PackedWeight p;
  p.name_ = t.name, p.kind_ = PackedKind::Affine;
  p.rows_ = t.rows, p.cols_ = t.cols, p.bits_ = t.bits;
  p.symmetric_ = t.symmetric, p.group_size_ = t.group_size, p.act_order_ = !t.g_idx.empty();
  const int64_t G = t.groups();
  p.groups_ = G;
  // Columns of each group, in column order.
  std::vector<std::vector<int32_t>> members(static_cast<size_t>(G));
  int64_t longest = 0;
  for (int64_t c = 0; c < t.cols; ++c) {
    auto& m = members[size_t(t.group_of(c))];
    m.push_back(int32_t(c));
    longest = std::max<int64_t>(longest, int64_t(m.size()));
  }
  p.group_slots_ = round_up(std::max<int64_t>(longest, 1), kUnit);
  // Uneven act-order groups pad every group to the longest; refuse a blow-up.
  if (G * p.group_slots_ > 2 * round_up(t.cols, kUnit) + G * kUnit)
    return fallback_f16(t, "g_idx groups too uneven to pack");
  p.slot_col_.assign(size_t(G * p.group_slots_), -1);
  bool identity = t.g_idx.empty() && G * p.group_slots_ == t.cols;
  for (int64_t g = 0; g < G; ++g)
    for (size_t j = 0; j < members[size_t(g)].size(); ++j) {
      p.slot_col_[size_t(g * p.group_slots_) + j] = members[size_t(g)][j];
      identity = identity && members[size_t(g)][j] == int32_t(g * p.group_slots_ + int64_t(j));
    }
  p.permuted_ = !identity;
  if (identity) p.slot_col_.clear();

  const int64_t units = G * p.group_slots_ / kUnit, ub = unit_bytes(t.bits);
  const int64_t row_bytes = units * ub;
  p.codes_.assign(size_t(t.rows * row_bytes), 0);
  p.scale_.resize(size_t(t.rows * G));
  p.offset_.resize(size_t(t.rows * G));
  tbb::parallel_for(int64_t(0), t.rows, [&](int64_t r) {
    uint8_t q[kUnit];
    for (int64_t u = 0; u < units; ++u) {
      for (int j = 0; j < kUnit; ++j) {
        const int64_t slot = u * kUnit + j;
        const int64_t c = identity ? slot : p.slot_col_[size_t(slot)];
        q[j] = c < 0 ? 0 : code_at(t.codes, uint64_t(r * t.cols + c), t.bits);
      }
      encode_unit(t.bits, q, p.codes_.data() + r * row_bytes + u * ub);
    }
    for (int64_t g = 0; g < G; ++g) {
      const size_t k = size_t(r * G + g);
      const float zero = t.zero_point(k);
      p.scale_[k] = t.scales[k];
      p.offset_[k] = -t.scales[k] * zero;
    }
  });

  // Outliers replace the decoded value: keep the difference, the last entry for an index.
  std::map<uint32_t, float> delta;
  for (size_t k = 0; k < t.outlier_index.size(); ++k) {
    const uint32_t i = t.outlier_index[k];
    const int64_t r = i / t.cols, c = i % t.cols;
    const size_t g = size_t(r * G + t.group_of(c));
    const float zero = t.zero_point(g);
    const float decoded = t.scales[g] * (float(code_at(t.codes, i, t.bits)) - zero);
    delta[i] = f16_to_f32(t.outlier_value[k]) - decoded;
  }
  if (!delta.empty()) {
    p.outlier_start_.assign(size_t(t.rows + 1), 0);
    for (const auto& [i, d] : delta) {
      ++p.outlier_start_[size_t(i / t.cols) + 1];
      p.outlier_col_.push_back(int32_t(i % t.cols));
      p.outlier_delta_.push_back(d);
    }
    for (int64_t r = 0; r < t.rows; ++r)
      p.outlier_start_[size_t(r + 1)] += p.outlier_start_[size_t(r)];
  }
  return p;
}

PackedWeight PackedWeight::pack_sparse24(const CompressedTensor& t, const Tensor& w) {
  PackedWeight p;
  p.name_ = t.name, p.kind_ = PackedKind::Sparse24;
  p.rows_ = t.rows, p.cols_ = t.cols;
  p.padded_cols_ = round_up(t.cols, kUnit);
  const int64_t blocks = p.padded_cols_ / kUnit;
  p.half_.assign(size_t(t.rows * blocks * 16), 0);
  p.positions_.assign(size_t(t.rows * blocks), 0);
  const float* v = w.as<float>();
  bool fits = true;
  for (int64_t r = 0; r < t.rows && fits; ++r)
    for (int64_t c0 = 0; c0 < t.cols && fits; c0 += 4) {
      const int64_t slot0 = r * blocks * 16 + c0 / 2;  // 2 values per group of 4 columns
      int n = 0;
      for (int64_t c = c0; c < std::min(c0 + 4, t.cols); ++c) {
        if (!t.kept(r * t.cols + c)) continue;
        if (n == 2) {
          fits = false;
          break;
        }
        p.half_[size_t(slot0 + n)] = f32_to_f16(v[r * t.cols + c]);
        const int k = int((c0 % kUnit) / 2 + n);  // value index within the block
        p.positions_[size_t(r * blocks + c0 / kUnit)] |= uint32_t(c - c0) << (2 * k);
        ++n;
      }
    }
  if (!fits) return fallback_f16(t, "mask is not 2:4");
  return p;
}

void PackedWeight::dequantize_rows(int64_t r0, int64_t r1, float* dst) const {
  if (r0 < 0 || r1 < r0 || r1 > rows_)
    throw std::invalid_argument("PackedWeight::dequantize_rows: row range outside the matrix");
  dequantize_unscaled(r0, r1, dst);
  if (!input_scale_.empty())
    for (int64_t r = 0; r < r1 - r0; ++r)
      for (int64_t c = 0; c < cols_; ++c) dst[r * cols_ + c] /= input_scale_[size_t(c)];
}

void PackedWeight::dequantize_unscaled(int64_t r0, int64_t r1, float* dst) const {
  const int64_t n = r1 - r0, C = cols_;
  switch (kind_) {
    case PackedKind::F32:
      std::copy(f32_.data() + r0 * C, f32_.data() + r1 * C, dst);
      break;
    case PackedKind::Stored:
      weight_rows_f32(stored_, r0, r1, dst);
      break;
    case PackedKind::F16:
      for (int64_t r = r0; r < r1; ++r)
        f16_to_f32_row(half_.data() + r * padded_cols_, dst + (r - r0) * C, size_t(C));
      break;
    case PackedKind::LowRank:
      mcw::matmul(a_.data() + r0 * rank_, b_.data(), dst, n, C, rank_);
      break;
    case PackedKind::Lut:
      lut_->dequantize_rows(r0, r1, dst);
      break;
    case PackedKind::Sparse24: {
      const int64_t blocks = padded_cols_ / kUnit;
      std::fill(dst, dst + n * C, 0.0f);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t b = 0; b < blocks; ++b) {
          const uint32_t pos = positions_[size_t(r * blocks + b)];
          for (int k = 0; k < 16; ++k) {
            const int64_t c = kUnit * b + 4 * (k / 2) + ((pos >> (2 * k)) & 3);
            const uint16_t h = half_[size_t((r * blocks + b) * 16 + k)];
            if (c < C && h) dst[(r - r0) * C + c] = f16_to_f32(h);
          }
        }
      break;
    }
    case PackedKind::Affine: {
      const int64_t units = groups_ * group_slots_ / kUnit, ub = unit_bytes(bits_);
      uint8_t q[kUnit];
      for (int64_t r = r0; r < r1; ++r) {
        float* out = dst + (r - r0) * C;
        for (int64_t u = 0; u < units; ++u) {
          decode_unit(bits_, codes_.data() + r * units * ub + u * ub, q);
          const size_t k = size_t(r * groups_ + u * kUnit / group_slots_);
          for (int j = 0; j < kUnit; ++j) {
            const int64_t slot = u * kUnit + j;
            const int64_t c = permuted_ ? slot_col_[size_t(slot)] : slot;
            if (c >= 0) out[c] = scale_[k] * float(q[j]) + offset_[k];
          }
        }
        if (!outlier_start_.empty())
          for (int64_t o = outlier_start_[size_t(r)]; o < outlier_start_[size_t(r + 1)]; ++o)
            out[outlier_col_[size_t(o)]] += outlier_delta_[size_t(o)];
      }
      break;
    }
  }
}

void PackedWeight::matmul(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
                          const float* bias, bool accumulate) const {
  if (m < 0) throw std::invalid_argument("PackedWeight::matmul: negative m");
  if (ldx < cols_ || ldy < rows_)
    throw std::invalid_argument("PackedWeight::matmul: leading dimension too small");
  if (m == 0 || rows_ == 0) return;
  if (input_scale_.empty()) return matmul_unscaled(X, ldx, Y, ldy, m, bias, accumulate);
  std::vector<float> xs(size_t(m * cols_));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < cols_; ++c)
      xs[size_t(i * cols_ + c)] = X[i * ldx + c] / input_scale_[size_t(c)];
  matmul_unscaled(xs.data(), cols_, Y, ldy, m, bias, accumulate);
}

void PackedWeight::matmul_unscaled(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
                                   const float* bias, bool accumulate) const {
  switch (kind_) {
    case PackedKind::F32:
      matmul_wt_strided(X, ldx, f32_.data(), cols_, Y, ldy, m, rows_, cols_, bias, accumulate);
      return;
    case PackedKind::Stored:
      matmul_wt_stored(X, ldx, stored_, Y, ldy, m, bias, accumulate);
      return;
    case PackedKind::Lut:
      if (int8_activations()) return lut_->matmul(X, ldx, Y, ldy, m, bias, accumulate);
      return large_m(X, ldx, Y, ldy, m, bias, accumulate);  // exact: dequantised tiles
    case PackedKind::LowRank: {
      std::vector<float> t(size_t(m * rank_));
      matmul_wt_strided(X, ldx, b_.data(), cols_, t.data(), rank_, m, rank_, cols_);
      matmul_wt_strided(t.data(), rank_, a_.data(), rank_, Y, ldy, m, rows_, rank_, bias,
                        accumulate);
      return;
    }
    default:
      if (m <= kSmallM) {
        small_m(X, ldx, Y, ldy, m, bias, accumulate);
      } else if (kind_ == PackedKind::Affine && int8_activations()) {
        // Integer dot products at every m, as for GGUF blocks: chunks of kSmallM rows, each
        // a pass over the codes (~4× the f32 tiles' speed at m = 64 on AVX2: PERFORMANCE.md).
        for (int64_t i0 = 0; i0 < m; i0 += kSmallM)
          small_m(X + i0 * ldx, ldx, Y + i0 * ldy, ldy, std::min(kSmallM, m - i0), bias,
                  accumulate);
      } else {
        large_m(X, ldx, Y, ldy, m, bias, accumulate);
      }
  }
}

void PackedWeight::small_m(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
                           const float* bias, bool accumulate) const {
  const bool affine = kind_ == PackedKind::Affine;
  // x in the layout's column order, zero padded to its width (unless it already is).
  const int64_t width = affine ? groups_ * group_slots_ : padded_cols_;
  const bool direct = affine ? !permuted_ : width == cols_;
  std::vector<float> xp, sums;
  const float* xs = X;
  int64_t ldxs = ldx;
  if (!direct) {
    xp.assign(size_t(m * width), 0.0f);
    for (int64_t i = 0; i < m; ++i) {
      float* d = xp.data() + i * width;
      if (affine) {
        for (int64_t s = 0; s < width; ++s)
          if (const int32_t c = slot_col_[size_t(s)]; c >= 0) d[s] = X[i * ldx + c];
      } else {
        std::copy(X + i * ldx, X + i * ldx + cols_, d);
      }
    }
    xs = xp.data(), ldxs = width;
  }
  // Affine with int8 activations: x̂ per activation block, and the group sums of x̂.
  const bool int8 = affine && int8_activations();
  Int8Activations xq[kSmallM];
  if (int8) {
    const int64_t block = affine_activation_block(group_slots_), per_group = group_slots_ / 16;
    sums.assign(size_t(m * groups_), 0.0f);
    for (int64_t i = 0; i < m; ++i) {
      quantize_activations(xs + i * ldxs, width, block, xq[i]);
      for (int64_t g = 0; g < groups_; ++g) {
        float s = 0;
        for (int64_t j = 0; j < per_group; ++j) s += xq[i].sum16[size_t(g * per_group + j)];
        sums[size_t(i * groups_ + g)] = s;
      }
    }
  } else if (affine) {
    sums.assign(size_t(m * groups_), 0.0f);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t g = 0; g < groups_; ++g) {
        float s = 0;
        for (int64_t j = 0; j < group_slots_; ++j) s += xs[i * ldxs + g * group_slots_ + j];
        sums[size_t(i * groups_ + g)] = s;
      }
  }
  const XRows x{xs, ldxs, sums.data(), groups_, m};
  const XInt8 xi{xq, sums.data(), groups_, m};
  const YOut y{Y, ldy, bias, accumulate};
  const PackedGemvIsa& isa = current_isa();
  const AffineView av{bits_,
                      groups_,
                      group_slots_ / kUnit,
                      groups_ * group_slots_ / kUnit * unit_bytes(bits_),
                      codes_.data(),
                      scale_.data(),
                      offset_.data()};
  const F16View fv{half_.data(), padded_cols_};
  const Sparse24View sv{half_.data(), positions_.data(), padded_cols_ / kUnit};
  auto rows = [&](int64_t r0, int64_t r1) {
    switch (kind_) {
      case PackedKind::Affine:
        if (int8)
          isa.affine_i8(av, xi, r0, r1, y);
        else
          isa.affine(av, x, r0, r1, y);
        break;
      case PackedKind::F16:
        isa.f16(fv, x, r0, r1, y);
        break;
      default:
        isa.sparse24(sv, x, r0, r1, y);
        break;
    }
    if (!outlier_start_.empty())
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t o = outlier_start_[size_t(r)]; o < outlier_start_[size_t(r + 1)]; ++o)
          for (int64_t i = 0; i < m; ++i)
            Y[i * ldy + r] += outlier_delta_[size_t(o)] * X[i * ldx + outlier_col_[size_t(o)]];
  };
  // Tasks of at least ~64 KiB of weights, in multiples of the 4-row tile.
  const uint64_t bytes = weight_bytes();
  const int64_t row_bytes = int64_t(bytes / uint64_t(rows_)) + 1;
  const int64_t grain = round_up(std::max<int64_t>(4, (int64_t(64) << 10) / row_bytes), 4);
  if (bytes < (uint64_t(256) << 10) || rows_ <= grain) return rows(0, rows_);
  const int64_t tasks = (rows_ + grain - 1) / grain;
  tbb::parallel_for(int64_t(0), tasks,
                    [&](int64_t k) { rows(k * grain, std::min(rows_, (k + 1) * grain)); });
}

void PackedWeight::large_m(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
                           const float* bias, bool accumulate) const {
  // Tiles of about 1 MiB of f32 weights, dequantised one per task.
  const int64_t tile = std::max<int64_t>(8, (int64_t(1) << 18) / std::max<int64_t>(cols_, 1));
  matmul_wt_row_tiles(
      X, ldx, rows_, cols_, tile,
      [&](int64_t r0, int64_t r1, float* dst) { dequantize_unscaled(r0, r1, dst); }, Y, ldy, m,
      bias, accumulate);
}

std::string PackedWeight::describe() const {
  std::string s;
  switch (kind_) {
    case PackedKind::F32:
      s = "f32 dense";
      break;
    case PackedKind::Stored:
      s = std::string(dtype_name(stored_.dtype())) + " dense, as the file stores it";
      break;
    case PackedKind::F16:
      s = "f16 dense";
      break;
    case PackedKind::Sparse24:
      s = "2:4 sparse f16";
      break;
    case PackedKind::LowRank:
      s = "low-rank r" + std::to_string(rank_) + " (two f32 products)";
      break;
    case PackedKind::Lut:
      s = lut_->describe() + " packed";
      break;
    case PackedKind::Affine:
      s = "affine int" + std::to_string(bits_) +
          (group_size_ >= cols_ && !act_order_ ? " per-channel"
                                               : " g" + std::to_string(group_size_)) +
          (symmetric_ ? " sym" : " asym") + " packed";
      if (act_order_) s += ", act-order columns permuted";
      if (!outlier_col_.empty()) s += ", " + std::to_string(outlier_col_.size()) + " outliers";
      break;
  }
  if (!why_.empty()) s += " (fallback: " + why_ + ")";
  if (!input_scale_.empty()) s += ", input divided by its scale";
  return s;
}

uint64_t PackedWeight::weight_bytes() const {
  return stored_.nbytes() + (lut_ ? lut_->weight_bytes() : 0) + codes_.size() +
         4 * (scale_.size() + offset_.size() + input_scale_.size()) + 8 * outlier_col_.size() +
         2 * half_.size() + 4 * positions_.size() + 4 * (f32_.size() + a_.size() + b_.size());
}

}  // namespace mcw
