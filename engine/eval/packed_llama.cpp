#include "engine/eval/packed_llama.h"

#include <cmath>
#include <cstring>
#include <map>

#include "engine/core/blocks.h"

namespace mcw {
namespace {

// True when `w` holds the decoded matrix `dq` exactly, or (a 16-bit weight, as the
// streaming writer stores a compressed model in its own dtype) its rounding to w's dtype.
bool holds_decoded(const Tensor& w, const float* dq, const float* w32) {
  const size_t n = size_t(w.numel());
  if (w.dtype() != DType::BF16 && w.dtype() != DType::F16)
    return std::memcmp(dq, w32, n * sizeof(float)) == 0;
  std::vector<uint16_t> rounded(n);
  from_f32(w.dtype(), dq, rounded.data(), n);
  return std::memcmp(rounded.data(), w.data(), n * sizeof(uint16_t)) == 0;
}

// Per-column factors f with w[r][c] == dq[r][c]·f[c] (to the rounding of w's dtype: the
// relative `tol`), or empty.
std::vector<float> column_factors(const float* dq, const float* w, int64_t rows, int64_t cols,
                                  float tol) {
  std::vector<float> f(size_t(cols), 1.0f);
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = 0; r < rows; ++r)
      if (dq[r * cols + c] != 0 && w[r * cols + c] != 0) {
        f[size_t(c)] = w[r * cols + c] / dq[r * cols + c];
        break;
      }
    for (int64_t r = 0; r < rows; ++r) {
      const float want = w[r * cols + c], got = dq[r * cols + c] * f[size_t(c)];
      if (!(std::abs(got - want) <= tol * std::abs(want) + 1e-30f)) return {};
    }
  }
  return f;
}

}  // namespace

PackedWeight pack_uncompressed(const Tensor& w, const std::string& name,
                               const PackedLlamaOptions& opt) {
  // A bf16/f16/GGUF-block weight runs as its file stores it: no copy, no re-rounding.
  if (w.dtype() != DType::F32) return PackedWeight::from_stored(w);
  return PackedWeight::from_f32(w.as<float>(), w.dim(0), w.dim(1), opt.uncompressed_f16, name);
}

PackedLlama::PackedLlama(const LlamaModel& model, std::span<const CompressedLayer> layers,
                         const PackedLlamaOptions& opt)
    : model_(&model), layers_(model.layers.size()) {
  std::map<std::string, const CompressedTensor*> by_name;
  for (const CompressedLayer& l : layers) by_name[l.tensor.name] = &l.tensor;

  auto pack = [&](const std::string& name, const Tensor& w, Linear& out) {
    const int64_t rows = w.dim(0), cols = w.dim(1);
    std::string why = "uncompressed";
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      out.w = pack_uncompressed(w, name, opt);
      paths_.push_back(name + ": " + out.w.describe() + " (" + why + ")");
      return;
    }
    // Compared (or packed) in f32: one layer at a time for a weight stored otherwise.
    const Tensor w32 = w.dtype() == DType::F32 ? w : w.f32_copy();
    const float* wf = w32.as<float>();
    const CompressedTensor& t = *it->second;
    if (t.rows == rows && t.cols == cols) {
      const Tensor dq = t.dequantize();
      const float* d = dq.as<float>();
      if (holds_decoded(w, d, wf)) {
        out.w = PackedWeight::from_compressed(t);
        paths_.push_back(name + ": " + out.w.describe());
        return;
      }
      // bf16 keeps 8 significant bits (half an ulp: 2^-9 relative), f16 11.
      const float tol = w.dtype() == DType::BF16 ? 0x1p-8f : w.dtype() == DType::F16 ? 0x1p-10f : 1e-5f;
      if (auto f = column_factors(d, wf, rows, cols, tol); !f.empty()) {
        out.w = PackedWeight::from_compressed(t);
        out.prescale = std::move(f);
        paths_.push_back(name + ": " + out.w.describe() + ", inputs scaled per column");
        return;
      }
      why = "its compressed tensor does not decode to the model's weight";
    } else {
      why = "its compressed tensor has another shape than the model's weight";
    }
    out.w = PackedWeight::from_f32(wf, rows, cols, opt.uncompressed_f16, name);
    paths_.push_back(name + ": " + out.w.describe() + " (" + why + ")");
  };

  // Names from named_tensors(), matched to the layers by address.
  std::map<const Tensor*, std::string> names;
  for (const auto& [n, t] : model.named_tensors()) names[t] = n;
  auto name_of = [&](const Tensor& t, const std::string& fallback) {
    auto it = names.find(&t);
    return it == names.end() ? fallback : it->second;
  };
  for (size_t l = 0; l < model.layers.size(); ++l) {
    const LlamaLayer& L = model.layers[l];
    const Tensor* ws[7] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down};
    for (int k = 0; k < 7; ++k)
      if (!ws[k]->empty())
        pack(name_of(*ws[k], "layer " + std::to_string(l) + " linear " + std::to_string(k)), *ws[k],
             layers_[l][size_t(k)]);
  }
  pack(name_of(model.lm_head(), "lm_head.weight"), model.lm_head(), head_);
}

void PackedLlama::apply(const Linear& l, const float* x, int64_t T, float* y, const float* bias,
                        bool accumulate) const {
  if (l.prescale.empty()) return l.w.matmul(x, y, T, bias, accumulate);
  const int64_t C = l.w.cols();
  std::vector<float> xs(x, x + T * C);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) xs[size_t(t * C + c)] *= l.prescale[size_t(c)];
  l.w.matmul(xs.data(), y, T, bias, accumulate);
}

void PackedLlama::forward(std::span<const int32_t> tokens, KVCache& cache, float* logits,
                          float* last_logits) const {
  const LlamaLinearFn hook = [this](int64_t layer, LlamaLinear which, const float* x, int64_t T,
                                    float* y, const float* bias, bool accumulate) {
    const Linear& l = layer < 0 ? head_ : layers_[size_t(layer)][size_t(which)];
    apply(l, x, T, y, bias, accumulate);
  };
  llama_forward(*model_, tokens, cache, logits, last_logits, &hook);
}

uint64_t PackedLlama::weight_bytes() const {
  uint64_t n = head_.w.weight_bytes();
  for (const auto& layer : layers_)
    for (const Linear& l : layer) n += l.w.weight_bytes();
  return n;
}

LatencyResult measure_latency(const PackedLlama& model, const LatencyOptions& opt,
                              const ProgressFn& progress, const CancelToken* cancel) {
  const LlamaStepFn step = [&](std::span<const int32_t> tokens, KVCache& cache, float* last) {
    model.forward(tokens, cache, nullptr, last);
  };
  return measure_latency(model.model().cfg, step, opt, progress, cancel);
}

}  // namespace mcw
