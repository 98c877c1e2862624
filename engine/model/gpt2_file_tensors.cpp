// GPT-2's tensor table, and the mapping between MCW's tensors (llama's names, [out, in],
// q/k/v apart) and a GPT-2 HF file's (transformer.h.N..., Conv1D [in, out], c_attn fused).
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "engine/core/error.h"
#include "engine/model/gpt2_model.h"
#include "engine/model/llama_save.h"

namespace mcw {

const std::vector<Gpt2FileTensor>& gpt2_block_file_tensors() {
  using R = BlockRole;
  static const std::vector<Gpt2FileTensor> table = {
      {"ln_1.weight", "attn_norm.weight", {R::AttnNorm}, false},
      {"ln_1.bias", "attn_norm.bias", {R::AttnNormBias}, false},
      {"attn.c_attn.weight", "attn_qkv.weight", {R::Q, R::K, R::V}, true},
      {"attn.c_attn.bias", "attn_qkv.bias", {R::QBias, R::KBias, R::VBias}, false},
      {"attn.c_proj.weight", "attn_output.weight", {R::O}, true},
      {"attn.c_proj.bias", "attn_output.bias", {R::OBias}, false},
      {"ln_2.weight", "ffn_norm.weight", {R::FfnNorm}, false},
      {"ln_2.bias", "ffn_norm.bias", {R::FfnNormBias}, false},
      {"mlp.c_fc.weight", "ffn_up.weight", {R::Up}, true},
      {"mlp.c_fc.bias", "ffn_up.bias", {R::UpBias}, false},
      {"mlp.c_proj.weight", "ffn_down.weight", {R::Down}, true},
      {"mlp.c_proj.bias", "ffn_down.bias", {R::DownBias}, false},
  };
  return table;
}

Tensor conv1d_transposed(const Tensor& t, const std::string& file) {
  const size_t e = size_t(dtype_info(t.dtype()).block_bytes);
  if (t.ndim() != 2 || is_block_type(t.dtype()) || (e != 2 && e != 4))
    throw Error(file, "tensor '" + t.name() + "' (" + std::string(dtype_name(t.dtype())) +
                          ") cannot be transposed as a Conv1D weight");
  const int64_t r = t.dim(0), c = t.dim(1);
  Tensor out = Tensor::zeros(t.dtype(), {c, r}, t.name());
  const auto* src = static_cast<const char*>(t.data());
  auto* dst = static_cast<char*>(out.mutable_data());
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j)
      std::memcpy(dst + size_t(j * r + i) * e, src + size_t(i * c + j) * e, e);
  return out;
}

namespace {

// acc[t][k] += x[t·ldx] · run[k] for the m rows of x: the inner step of the Conv1D product,
// compiled for AVX-512 and AVX2 beside the baseline and picked at load time.
__attribute__((target_clones("avx512f", "avx2", "default"))) void accumulate_run(
    const float* run, int64_t n, const float* x, int64_t ldx, int64_t m, float* acc) {
  for (int64_t t = 0; t < m; ++t) {
    const float xt = x[t * ldx];
    float* a = acc + t * n;
    for (int64_t k = 0; k < n; ++k) a[k] += xt * run[k];
  }
}
// The same over bf16 values, widened in registers (a bf16 is an f32's upper half).
__attribute__((target_clones("avx512f", "avx2", "default"))) void accumulate_bf16_run(
    const uint16_t* run, int64_t n, const float* x, int64_t ldx, int64_t m, float* acc) {
  for (int64_t t = 0; t < m; ++t) {
    const float xt = x[t * ldx];
    float* a = acc + t * n;
    for (int64_t k = 0; k < n; ++k) {
      const uint32_t w = uint32_t(run[k]) << 16;
      float v;
      std::memcpy(&v, &w, sizeof v);
      a[k] += xt * v;
    }
  }
}

// Columns [first, first + rows) of a Conv1D weight stored [in, out], as the rows of the
// [rows, in] matrix MCW multiplies with: transposed as they are decoded (a tile of rows at
// a time, each stored row read as one short run), so the weight stays a view of the file.
class Conv1dDecoder final : public TensorDecoder {
 public:
  Conv1dDecoder(Tensor stored, int64_t first, int64_t rows)
      : stored_(std::move(stored)), first_(first), rows_(rows) {}

  void decode(size_t first, size_t count, float* out) const override {
    const int64_t in = stored_.dim(0), width = stored_.dim(1), base = int64_t(first);
    const int64_t end = base + int64_t(count);
    std::vector<float> run(static_cast<size_t>(kTile));
    for (int64_t at = base; at < end;) {
      const int64_t r = at / in, i0 = at % in;
      if (i0 == 0 && end - at >= in) {  // whole rows r .. r1: one short run per stored row
        const int64_t r1 = std::min({rows_, r + (end - at) / in, r + kTile});
        for (int64_t i = 0; i < in; ++i) {
          stored_.to_f32(run.data(), size_t(i * width + first_ + r), size_t(r1 - r));
          for (int64_t k = 0; k < r1 - r; ++k) out[(r + k) * in + i - base] = run[size_t(k)];
        }
        at += (r1 - r) * in;
      } else {  // part of row r, a value at a time
        const int64_t i1 = std::min(in, i0 + (end - at));
        for (int64_t i = i0; i < i1; ++i)
          stored_.to_f32(out + (at - base) + (i - i0), size_t(i * width + first_ + r), 1);
        at += i1 - i0;
      }
    }
  }
  int64_t row_granularity() const override { return kTile; }
  // A few rows of X: y[o] = Σ_i x[i]·S[i][first + o], each stored row read once as a run per
  // block of outputs (decoding every tile transposed costs ~15× a bf16 GEMV at m = 1).
  bool multiply(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m, const float* bias,
                bool accumulate) const override {
    const int64_t in = stored_.dim(0), width = stored_.dim(1);
    constexpr int64_t kBlock = 1024;
    const bool bf16 = stored_.dtype() == DType::BF16;
    const auto* bits = static_cast<const uint16_t*>(stored_.data());
    tbb::parallel_for(int64_t(0), (rows_ + kBlock - 1) / kBlock, [&](int64_t b) {
      const int64_t o0 = b * kBlock, n = std::min(kBlock, rows_ - o0);
      std::vector<float> run(static_cast<size_t>(n)), acc(static_cast<size_t>(m * n), 0.0f);
      for (int64_t i = 0; i < in; ++i) {
        const size_t at = size_t(i * width + first_ + o0);
        if (bf16)
          accumulate_bf16_run(bits + at, n, X + i, ldx, m, acc.data());
        else
          stored_.to_f32(run.data(), at, size_t(n)),
              accumulate_run(run.data(), n, X + i, ldx, m, acc.data());
      }
      for (int64_t t = 0; t < m; ++t)
        for (int64_t k = 0; k < n; ++k) {
          float& y = Y[t * ldy + o0 + k];
          const float v = acc[size_t(t * n + k)] + (bias ? bias[o0 + k] : 0.0f);
          y = accumulate ? y + v : v;
        }
    });
    return true;
  }
  std::string describe() const override {
    return std::string(dtype_name(stored_.dtype())) + " Conv1D weight, transposed as read";
  }

 private:
  static constexpr int64_t kTile = 64;
  Tensor stored_;
  int64_t first_, rows_;
};

constexpr const char* kPrefix = "transformer.";

// MCW's names of the tensors outside the blocks, and GPT2LMHeadModel's.
const std::pair<const char*, const char*> kTopNames[] = {
    {"model.embed_tokens.weight", "transformer.wte.weight"},
    {"model.embed_positions.weight", "transformer.wpe.weight"},
    {"model.norm.weight", "transformer.ln_f.weight"},
    {"model.norm.bias", "transformer.ln_f.bias"},
    {"lm_head.weight", "lm_head.weight"},
};

const Gpt2FileTensor* file_tensor_of(BlockRole role, size_t* part = nullptr) {
  for (const Gpt2FileTensor& f : gpt2_block_file_tensors())
    for (size_t k = 0; k < f.parts.size(); ++k)
      if (f.parts[k] == role) {
        if (part) *part = k;
        return &f;
      }
  return nullptr;
}

std::string file_name(int64_t layer, const Gpt2FileTensor& f) {
  return std::string(kPrefix) + "h." + std::to_string(layer) + "." + f.hf;
}

}  // namespace

Tensor conv1d_rows(const Tensor& stored, int64_t first, int64_t rows, std::string name) {
  const int64_t in = stored.dim(0);
  const size_t bytes = size_t(rows * in) * size_t(dtype_info(stored.dtype()).block_bytes);
  return Tensor::decoded({rows, in}, std::make_shared<Conv1dDecoder>(stored, first, rows), bytes,
                         std::move(name));
}

std::vector<Tensor> gpt2_file_tensors(std::vector<Tensor> ts) {
  std::vector<Tensor> out;
  // (layer, file tensor) -> its parts in row order
  std::map<std::pair<int64_t, const Gpt2FileTensor*>, std::vector<Tensor*>> groups;
  std::vector<std::pair<int64_t, const Gpt2FileTensor*>> order;
  for (Tensor& t : ts) {
    int64_t layer = 0;
    size_t part = 0;
    const BlockTensor* row = find_block_tensor(t.name(), &layer);
    const Gpt2FileTensor* f = row ? file_tensor_of(row->role, &part) : nullptr;
    if (!f) {
      bool renamed = false;
      for (const auto& [mcw, hf] : kTopNames)
        if (t.name() == mcw) t.set_name(hf), renamed = true;
      if (!renamed) throw Error(t.name(), "has no place in a GPT-2 file");
      out.push_back(std::move(t));
      continue;
    }
    auto& parts = groups[{layer, f}];
    if (parts.empty()) order.push_back({layer, f});
    parts.resize(f->parts.size());
    parts[part] = &t;
  }
  for (const auto& key : order) {
    std::vector<const Tensor*> parts(groups.at(key).begin(), groups.at(key).end());
    const std::string name = file_name(key.first, *key.second);
    std::vector<Tensor> decoded;  // parts read through a decoder (a loaded Conv1D), as f32
    decoded.reserve(parts.size());
    for (const Tensor*& p : parts)
      if (p && p->dtype() == DType::Packed) decoded.push_back(p->f32_copy()), p = &decoded.back();
    Tensor fused = stacked_rows(parts, name);
    out.push_back(key.second->conv1d ? conv1d_transposed(fused, name) : std::move(fused));
  }
  return out;
}

int64_t gpt2_file_tensor_rows(const LlamaConfig& c, const Gpt2FileTensor& f) {
  int64_t rows = 0;
  for (BlockRole role : f.parts) rows += width(c, block_tensor(role).rows, 0);
  return rows;
}

std::vector<Tensor> gpt2_file_tensor_parts(const LlamaConfig& c, const Gpt2FileTensor& f,
                                           const Tensor& t, bool conv1d, int64_t layer) {
  std::vector<Tensor> parts;
  int64_t first = 0;
  for (BlockRole role : f.parts) {
    const BlockTensor& part = block_tensor(role);
    const int64_t rows = width(c, part.rows, 0);
    const std::string name = block_tensor_name(layer, part);
    parts.push_back(conv1d ? conv1d_rows(t, first, rows, name) : t.rows(first, first + rows, name));
    first += rows;
  }
  return parts;
}

std::vector<Tensor> gpt2_model_tensors(const LlamaConfig& c, std::vector<Tensor> ts) {
  std::vector<Tensor> out;
  for (Tensor& t : ts) {
    const std::string& n = t.name();
    bool top = false;
    for (const auto& [mcw, hf] : kTopNames)
      if (n == hf) t.set_name(mcw), top = true;
    if (top) {
      out.push_back(std::move(t));
      continue;
    }
    const Gpt2FileTensor* file = nullptr;
    int64_t layer = -1;
    std::string_view rest;
    if (split_block_name(n, std::string(kPrefix) + "h.", layer, rest) && layer < c.n_layers)
      for (const Gpt2FileTensor& f : gpt2_block_file_tensors())
        if (rest == f.hf) file = &f;
    if (!file) throw Error(n, "is not a tensor of this GPT-2 model");
    const int64_t rows = gpt2_file_tensor_rows(c, *file);
    if (t.ndim() != (file->conv1d ? 2u : 1u) || t.dim(file->conv1d ? 1 : 0) != rows)
      throw Error(n, "has shape " + shape_string(t.shape()) + " where this model's parts have " +
                         std::to_string(rows) + " rows");
    for (Tensor& part : gpt2_file_tensor_parts(c, *file, t, file->conv1d, layer))
      out.push_back(std::move(part));
  }
  return out;
}

}  // namespace mcw
