#include "engine/export/gguf_export.h"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_reduce.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/export/gguf_codes.h"
#include "engine/export/gguf_tokenizer.h"
#include "engine/export/importance_matrix.h"
#include "engine/export/packed_safetensors.h"
#include "engine/model/llama_save.h"
#include "engine/model/llama_tensors.h"
#include "engine/model/rope_freq_factors.h"

namespace mcw {
namespace {

// One tensor of the file and where its values come from.
struct Source {
  std::string name, hf;  // GGUF and HF names
  const Tensor* t;
  GgufTensorPlace place;
  int64_t rotary_head_dim = 0;  // > 0: rows (or elements) go to Meta's interleaved order
};

GgufTensorRole role_of(BlockRole r) {
  switch (r) {
    case BlockRole::Q:
      return GgufTensorRole::AttnQ;
    case BlockRole::K:
      return GgufTensorRole::AttnK;
    case BlockRole::V:
      return GgufTensorRole::AttnV;
    case BlockRole::O:
      return GgufTensorRole::AttnOutput;
    case BlockRole::Gate:
      return GgufTensorRole::FfnGate;
    case BlockRole::Up:
      return GgufTensorRole::FfnUp;
    case BlockRole::Down:
      return GgufTensorRole::FfnDown;
    default:
      return GgufTensorRole::Other;
  }
}

// `rope_freqs`: Llama 3's scaling as llama.cpp reads it (rope_freq_factors.h), or null.
std::vector<Source> sources(const LlamaModel& m, const Tensor* rope_freqs) {
  const LlamaConfig& c = m.cfg;
  const bool interleave = gguf_architecture(c) == "llama";
  auto place = [&](const Tensor& t, GgufTensorRole role, int layer) {
    GgufTensorPlace p;
    p.role = role, p.layer = layer, p.n_layers = int(c.n_layers);
    p.tied_embeddings = c.tie_embeddings, p.cols = t.shape().back(), p.matrix = t.ndim() == 2;
    return p;
  };
  std::vector<Source> out;
  if (rope_freqs)
    out.push_back({"rope_freqs.weight", "", rope_freqs, place(*rope_freqs, GgufTensorRole::Other, 0)});
  out.push_back({"token_embd.weight", "model.embed_tokens.weight", &m.tok_embd,
                 place(m.tok_embd, GgufTensorRole::TokenEmbd, 0)});
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (const BlockTensor& bt : llama_block_tensors()) {
      if (!bt.present(c)) continue;
      const Tensor& t = m.layers[size_t(l)].*bt.member;
      out.push_back({"blk." + std::to_string(l) + "." + bt.gguf, block_tensor_name(l, bt), &t,
                     place(t, role_of(bt.role), int(l)), bt.rotary && interleave ? c.head_dim : 0});
    }
  out.push_back({"output_norm.weight", "model.norm.weight", &m.out_norm,
                 place(m.out_norm, GgufTensorRole::Other, 0)});
  if (!c.tie_embeddings)
    out.push_back(
        {"output.weight", "lm_head.weight", &m.output, place(m.output, GgufTensorRole::Output, 0)});
  return out;
}

// Source row of output row r when rows go from HF's rotate-half order to Meta's
// interleaved one: within a head, output 2j + c is input c·head_dim/2 + j.
int64_t interleaved_source(int64_t r, int64_t head_dim) {
  const int64_t h = r / head_dim, k = r % head_dim;
  return h * head_dim + (k % 2) * (head_dim / 2) + k / 2;
}

struct ErrorSums {
  double diff = 0, ref = 0;    // Σ d², Σ w²
  double wdiff = 0, wref = 0;  // the same weighted by the column's importance
};

// Rows [r0, r0 + n) of `s` in `type`, written to dst (from `codes` when given, else
// encoded from the source's values, weighted by `importance` per column when given);
// returns the squared error sums against the source.
ErrorSums fill_rows(const Source& s, DType type, const CompressedTensor* codes,
                    const float* importance, int64_t r0, int64_t n, char* dst) {
  const Tensor& t = *s.t;
  const int64_t cols = t.shape().back();
  const size_t row_bytes =
      size_t(cols / dtype_info(type).block) * size_t(dtype_info(type).block_bytes);
  if (t.ndim() == 1) {  // a vector: one row, elements permuted for rotary biases
    std::vector<float> v = t.to_f32(), out(v.size());
    for (int64_t i = 0; i < cols; ++i)
      out[size_t(i)] = v[size_t(s.rotary_head_dim ? interleaved_source(i, s.rotary_head_dim) : i)];
    from_f32(type, out.data(), dst, out.size());
    return {};  // vectors are written exactly (F32)
  }
  if (t.dtype() == type) {  // already in the file's type: the bytes as they are (no error)
    const auto* src = static_cast<const char*>(t.data());
    for (int64_t r = r0; r < r0 + n; ++r) {
      const int64_t from = s.rotary_head_dim ? interleaved_source(r, s.rotary_head_dim) : r;
      std::memcpy(dst + size_t(r - r0) * row_bytes, src + size_t(from) * row_bytes, row_bytes);
    }
    return {};
  }
  const int64_t g = t.decoder() ? std::max<int64_t>(1, t.decoder()->row_granularity()) : 1;
  return tbb::parallel_reduce(
      tbb::blocked_range<int64_t>(r0, r0 + n, 8), ErrorSums{},
      [&](const tbb::blocked_range<int64_t>& range, ErrorSums acc) {
        std::vector<float> group(size_t(g * cols)), back(static_cast<size_t>(cols));
        for (int64_t r = range.begin(); r < range.end(); ++r) {
          const int64_t src = s.rotary_head_dim ? interleaved_source(r, s.rotary_head_dim) : r;
          // Packed layouts decode whole groups of rows; take the one wanted.
          const int64_t first = src / g * g;
          t.to_f32(group.data(), size_t(first * cols), size_t(g * cols));
          const float* row = group.data() + (src - first) * cols;
          char* out = dst + size_t(r - r0) * row_bytes;
          if (codes) gguf_codes_row(*codes, type, src, out);
          else from_f32_weighted(type, row, out, size_t(cols), importance);
          to_f32(type, out, back.data(), size_t(cols));
          for (int64_t j = 0; j < cols; ++j) {
            const double d = double(back[size_t(j)]) - double(row[j]);
            const double w2 = double(row[j]) * double(row[j]);
            acc.diff += d * d, acc.ref += w2;
            if (importance) acc.wdiff += importance[j] * d * d, acc.wref += importance[j] * w2;
          }
        }
        return acc;
      },
      [](ErrorSums a, const ErrorSums& b) {
        a.diff += b.diff, a.ref += b.ref, a.wdiff += b.wdiff, a.wref += b.wref;
        return a;
      });
}

std::vector<GGUFKeyValue> architecture_kvs(const LlamaModel& model, const std::string& path) {
  const LlamaConfig& c = model.cfg;
  if (c.long_rope.enabled())
    throw Error(path, "GGUF export of LongRoPE (Phi-3) rope scaling is not supported yet");
  const std::string arch = gguf_architecture(c);
  std::vector<GGUFKeyValue> kv;
  auto u32 = [&](const std::string& k, int64_t v) { kv.push_back({arch + "." + k, uint32_t(v)}); };
  auto f32 = [&](const std::string& k, double v) { kv.push_back({arch + "." + k, float(v)}); };
  kv.push_back({"general.architecture", arch});
  kv.push_back({"general.name", std::string("mcw-export")});
  u32("context_length", c.max_seq_len);
  u32("embedding_length", c.dim);
  u32("feed_forward_length", c.hidden_dim);
  u32("block_count", c.n_layers);
  u32("attention.head_count", c.n_heads);
  u32("attention.head_count_kv", c.n_kv_heads);
  u32("attention.key_length", c.head_dim);
  u32("attention.value_length", c.head_dim);
  u32("vocab_size", c.vocab_size);
  u32("rope.dimension_count", c.head_dim);
  f32("rope.freq_base", c.rope_theta);
  f32("attention.layer_norm_rms_epsilon", c.rms_eps);
  if (c.sliding_window > 0) u32("attention.sliding_window", c.sliding_window);
  // llama.cpp runs without activation quantisation; the key lets MCW reproduce W8A8.
  if (const auto masks = activation_int8_masks(model); !masks.empty())
    kv.push_back({"mcw.activation_int8", GGUFValue::array(masks)});
  return kv;
}

}  // namespace

std::string gguf_architecture(const LlamaConfig& c) {
  // A Qwen2 is written as llama.cpp's qwen2 architecture (q/k/v biases, q/k rows in HF's
  // rotate-half order); anything else as its llama architecture, whose optional biases
  // hold structured pruning's compensation and q/k rows are in Meta's interleaved order.
  return c.hf_model_type() == "qwen2" ? "qwen2" : "llama";
}

GgufExportReport write_llama_gguf(const LlamaModel& model, const std::string& path,
                                  GgufWriteOptions w) {
  std::vector<GGUFKeyValue> kvs = architecture_kvs(model, path);
  for (GGUFKeyValue& kv : w.extra) kvs.push_back(std::move(kv));
  std::optional<Tensor> rope_freqs;
  if (model.cfg.rope_scaling.enabled) {
    const std::vector<float> f = llama3_rope_factors(model.cfg);
    rope_freqs = Tensor::from_f32(f, {int64_t(f.size())}, "rope_freqs.weight");
  }
  const std::vector<Source> srcs = sources(model, rope_freqs ? &*rope_freqs : nullptr);
  std::map<std::string, size_t> packed_index;  // HF name -> layer of w.packed
  for (size_t k = 0; w.packed && k < w.packed->size(); ++k) packed_index[w.packed->scheme(k).name] = k;
  GgufExportReport result;
  std::vector<GgufTensorOut> outs;
  std::vector<ErrorSums> sums(srcs.size());
  // The compressed layer of the tensor being written (one at a time: tensors are filled in
  // file order), when its codes go into the file as they are.
  size_t codes_of = SIZE_MAX;
  std::optional<CompressedTensor> codes;
  uint64_t total = 0, done = 0;
  for (const Source& s : srcs) total += uint64_t(s.t->numel());
  for (size_t i = 0; i < srcs.size(); ++i) {
    const Source& s = srcs[i];
    const DType type = w.type_of(s.place);
    result.tensors.push_back({s.name, type, 0, {}, false, {}});
    const float* importance = nullptr;  // llama.cpp's imatrix entry for this weight
    if (w.importance)
      if (const auto it = w.importance->find(s.hf); it != w.importance->end()) {
        if (int64_t(it->second.size()) != s.t->shape().back())
          throw Error(path, "importance of " + s.hf + " has " + std::to_string(it->second.size()) +
                                " columns, the weight " + std::to_string(s.t->shape().back()));
        importance = it->second.data();
      }
    outs.push_back({s.name, type, s.t->shape(), [&, i, type, importance](int64_t r0, int64_t n,
                                                                         void* dst) {
                      if (w.cancel) w.cancel->throw_if_cancelled();
                      if (codes_of != i) {
                        codes_of = i, codes.reset();
                        if (const auto k = packed_index.find(srcs[i].hf); k != packed_index.end()) {
                          CompressedTensor ct = w.packed->read(k->second);
                          std::string& why = result.tensors[i].requantised_because;
                          why = gguf_codes_misfit(ct, type);
                          result.tensors[i].codes_kept = why.empty();
                          if (why.empty()) codes = std::move(ct);
                        }
                      }
                      const ErrorSums e = fill_rows(srcs[i], type, codes ? &*codes : nullptr,
                                                    importance, r0, n, static_cast<char*>(dst));
                      sums[i].diff += e.diff, sums[i].ref += e.ref;
                      sums[i].wdiff += e.wdiff, sums[i].wref += e.wref;
                      done += uint64_t(n * srcs[i].t->shape().back());
                      report(w.progress, "export", srcs[i].name, double(done) / double(total));
                    }});
  }
  write_gguf_streamed(path, kvs, outs);
  for (size_t i = 0; i < srcs.size(); ++i) {
    result.tensors[i].rel_error = sums[i].ref > 0 ? std::sqrt(sums[i].diff / sums[i].ref) : 0;
    if (sums[i].wref > 0) result.tensors[i].weighted_rel_error = std::sqrt(sums[i].wdiff / sums[i].wref);
  }
  result.file_bytes = uint64_t(std::filesystem::file_size(path));
  return result;
}

GgufExportReport export_gguf(const std::string& model_path, const std::string& out,
                             const GgufFileType& type, const GgufExportOptions& o) {
  const ModelFile mf = open_model_file(model_path);
  const LlamaModel model = load_llama(mf);
  GgufWriteOptions w;
  w.extra = gguf_tokenizer_kvs(mf, model.cfg.vocab_size);
  w.extra.push_back({"general.file_type", type.ftype});
  if (is_block_type(type.base)) w.extra.push_back({"general.quantization_version", uint32_t(2)});
  w.type_of = [&](const GgufTensorPlace& p) { return gguf_tensor_type(type, p); };
  std::optional<PackedSafetensorsReader> packed;
  if (const std::string p = find_packed_beside(model_path); !p.empty()) w.packed = &packed.emplace(p);
  ImportanceMatrix importance;
  if (!o.calibration.empty()) {
    for (const std::vector<int32_t>& win : o.calibration)
      if (int64_t(win.size()) > model.cfg.max_seq_len)
        throw Error(model_path, "calibration windows of " + std::to_string(win.size()) +
                                    " tokens exceed the model's context of " +
                                    std::to_string(model.cfg.max_seq_len));
    importance = measure_importance(model, o.calibration, progress_part(o.progress, 0, 0.3), o.cancel);
    w.importance = &importance;
  }
  w.progress = o.calibration.empty() ? o.progress : progress_part(o.progress, 0.3, 1);
  w.cancel = o.cancel;
  return write_llama_gguf(model, out, std::move(w));
}

void save_llama_gguf(const LlamaModel& model, const std::string& path, DType dtype) {
  GgufWriteOptions w;
  w.type_of = [dtype](const GgufTensorPlace& p) {
    if (!p.matrix || p.cols % dtype_info(dtype).block != 0) return DType::F32;
    return dtype;
  };
  write_llama_gguf(model, path, std::move(w));
}

}  // namespace mcw
