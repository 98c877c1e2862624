// Compressed layers as they would be deployed: one safetensors file holding each
// CompressedTensor's parts (packed codes, group scales and zero points, codebooks, act-order
// group indices, sparsity masks, f16 outliers, low-rank factors) as tensors named
// "<layer>.<part>", and each layer's scheme as JSON under the "mcw.packed" metadata key
// (safetensors metadata maps strings to strings only).
//
// Parts and dtypes:
//   .codes          U8  [ceil(rows*cols*bits/8)]  pack_codes() bitstream (Affine, Codebook)
//   .scales .zeros  F16|F32 [rows, groups]        (Affine; zeros only when asymmetric)
//   .codebook       F16|F32 [rows, groups, 2^bits] (Codebook)
//   .g_idx          I32 [cols]                    optional act-order group of each column
//   .mask           U8  [ceil(rows*cols/8)]       optional, bit per weight, 1 = kept
//   .outlier_index  U32 [k], .outlier_value F16 [k]  optional
//   .lr_a .lr_b     F16|F32 [rows, rank], [rank, cols] (LowRank)
//   .dense          F16|F32 [rows, cols]          (Dense)
//   .input_scale    F16|F32 [cols]                optional: the input is divided by it
//                                                 (AWQ's s; every entry finite, non-zero)
// Floating parts are written as F16 when every value is exactly an f16 (scales and
// codebooks always are, as the quantisers round them), else as F32, so that reading back
// gives bit-identical values and dequantize() the same matrix.
//
// The metadata JSON: {"version": 1, "layers": [{"name", "coding" ("dense" | "affine" |
// "codebook" | "low_rank"), "rows", "cols", "bits", "group_size", "symmetric", "nm_n",
// "nm_m", "rank", "description"}, ...]} in the order written; "description" (describe())
// is for people and other tools, and is not trusted on reading.
//
// An AWQ layer's parts code W·diag(s) and its .input_scale holds s, so that dequantize()
// of the layer read back is the weight the model runs with (W·diag(s) / s per column). A
// reader that does not know .input_scale refuses the file (an unclaimed tensor) rather
// than decoding W·diag(s).
#pragma once
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/io/safetensors.h"

namespace mcw {

inline constexpr const char* kPackedMetadataKey = "mcw.packed";
inline constexpr int kPackedFormatVersion = 1;
// The file `mcw compress` and the studio's export write beside the dequantised model.
inline constexpr const char* kPackedFileName = "packed.safetensors";
// A layer may not hold more weights than this (2^33, 32 GiB as f32): dequantize() of a
// low-rank layer allocates rows*cols floats that no part of the file pays for.
inline constexpr int64_t kMaxPackedWeights = int64_t(1) << 33;

std::string_view coding_name(WeightCoding coding);  // "dense", "affine", ...

// The packed export that belongs to a model: kPackedFileName inside `model_path` when it
// is a directory, else beside it; empty when there is none.
std::string find_packed_beside(const std::string& model_path);

// Checks that `t` is self-consistent (part sizes, bit widths, group indices, mask pattern,
// outlier indices, input scale), so that dequantize() and storage_bits() are safe; throws
// mcw::Error naming `file` and the layer otherwise.
void validate_compressed_tensor(const CompressedTensor& t, const std::string& file);

// Validates every layer, then writes atomically. Throws mcw::Error on an invalid layer or
// a duplicate name.
void write_packed_safetensors(const std::string& path, const std::vector<CompressedTensor>& layers);
// The same without copying the layers (a model's codes can be gigabytes).
void write_packed_safetensors(const std::string& path,
                              const std::vector<const CompressedTensor*>& layers);

// A packed file opened (mapped) with its layer list checked, each layer's parts copied out
// and validated only when read(): an 8 B model's codes are gigabytes, and a reader that
// goes layer by layer holds one layer. The file is untrusted: every part is checked against
// the scheme and the bytes present, and any problem throws a one-line mcw::Error naming the
// file, the layer and the part (the constructor: metadata, and tensors that belong to no
// layer; read(): that layer's parts).
class PackedSafetensorsReader {
 public:
  explicit PackedSafetensorsReader(const std::string& path);
  PackedSafetensorsReader(const PackedSafetensorsReader&) = delete;  // by_name_ points inside
  PackedSafetensorsReader& operator=(const PackedSafetensorsReader&) = delete;
  const std::string& path() const { return path_; }
  size_t size() const { return schemes_.size(); }
  // Layer i's scheme (name, coding, shape, bits, ...) without its parts.
  const CompressedTensor& scheme(size_t i) const { return schemes_.at(i); }
  CompressedTensor read(size_t i) const;

 private:
  std::string path_;
  SafetensorsFile file_;
  std::map<std::string, const Tensor*> by_name_;  // into file_.tensors
  std::vector<CompressedTensor> schemes_;
};

// Every layer at once (small models and tests; see PackedSafetensorsReader).
std::vector<CompressedTensor> read_packed_safetensors(const std::string& path);

}  // namespace mcw
