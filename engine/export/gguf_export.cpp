#include "engine/export/gguf_export.h"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_reduce.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "engine/compress/calibrate.h"
#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/core/sha256.h"
#include "engine/core/block_code_grid.h"
#include "engine/export/gguf_codes.h"
#include "engine/export/gguf_gptq.h"
#include "engine/export/gguf_gptq_checkpoint.h"
#include "engine/export/gguf_tokenizer.h"
#include "engine/export/importance_matrix.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/staging_dir.h"
#include "engine/model/llama_save.h"
#include "engine/model/llama_tensors.h"
#include "engine/model/rope_freq_factors.h"
#include "engine/runs/fingerprint.h"

namespace mcw {
namespace {

// Where a file tensor's rows come from: one source tensor, or for Phi-3's fused q/k/v and
// gate/up each part in turn (rows stacked).
struct Part {
  std::string hf;  // HF name
  const Tensor* t;
  int64_t first_row = 0;        // in the file tensor
  int64_t rotary_head_dim = 0;  // > 0: rows (or elements) go to Meta's interleaved order
};
// One tensor of the file.
struct Source {
  std::string name;  // GGUF name
  std::vector<Part> parts;
  GgufTensorPlace place;
  Shape shape;
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

// `extra`: Llama 3's rope_freqs or Phi-3's LongRoPE factors, written first.
std::vector<Source> sources(const LlamaModel& m, const std::vector<Tensor>& extra) {
  const LlamaConfig& c = m.cfg;
  const bool interleave = gguf_architecture(c) == "llama", fused = c.fused_projections();
  auto place = [&](const Tensor& t, GgufTensorRole role, int layer) {
    GgufTensorPlace p;
    p.role = role, p.layer = layer, p.n_layers = int(c.n_layers);
    p.tied_embeddings = c.tie_embeddings, p.cols = t.shape().back(), p.matrix = t.ndim() == 2;
    return p;
  };
  std::vector<Source> out;
  auto one = [&](const std::string& name, const std::string& hf, const Tensor& t, GgufTensorRole role,
                 int layer = 0, int64_t rotary_head_dim = 0) {
    out.push_back({name, {{hf, &t, 0, rotary_head_dim}}, place(t, role, layer), t.shape()});
  };
  for (const Tensor& t : extra) one(t.name(), "", t, GgufTensorRole::Other);
  one("token_embd.weight", "model.embed_tokens.weight", m.tok_embd, GgufTensorRole::TokenEmbd);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    for (const BlockTensor& bt : llama_block_tensors()) {
      if (!bt.present(c)) continue;
      const Tensor& t = m.layers[size_t(l)].*bt.member;
      const auto f = fused ? fused_part(c, bt.role) : std::nullopt;
      if (!f) {
        one(blk + bt.gguf, block_tensor_name(l, bt), t, role_of(bt.role), int(l),
            bt.rotary && interleave ? c.head_dim : 0);
        continue;
      }
      if (f->first > 0) continue;  // written with the fused tensor's first part
      // llama.cpp's phi3 ffn_up holds gate and up, and is typed as an ffn_up.
      const GgufTensorRole role = f->fused->parts[0] == BlockRole::Q ? GgufTensorRole::AttnQkv : GgufTensorRole::FfnUp;
      Source s{blk + f->fused->gguf, {}, place(t, role, int(l)), {f->rows, t.dim(1)}};
      for (BlockRole r : f->fused->parts) {
        const BlockTensor& part = block_tensor(r);
        s.parts.push_back({block_tensor_name(l, part), &(m.layers[size_t(l)].*part.member), fused_part(c, r)->first});
      }
      out.push_back(std::move(s));
    }
  }
  one("output_norm.weight", "model.norm.weight", m.out_norm, GgufTensorRole::Other);
  if (!c.tie_embeddings) one("output.weight", "lm_head.weight", m.output, GgufTensorRole::Output);
  return out;
}

// The file type of each source part (by HF name), as `type_of` gives its tensor.
std::map<std::string, DType> part_types(const LlamaModel& m,
                                        const std::function<DType(const GgufTensorPlace&)>& type_of) {
  std::map<std::string, DType> out;
  const std::vector<Tensor> none;
  for (const Source& s : sources(m, none))
    for (const Part& p : s.parts) out[p.hf] = type_of(s.place);
  return out;
}

// The linears the GPTQ pass re-quantises, with their GGUF types: those whose type has a code
// grid, except weights already stored in that type (copied as they are) and MCW codes that
// are exactly its blocks (kept). Worked out once: each packed layer is read once.
std::map<std::string, DType> gptq_targets(LlamaModel& m,
                                          const std::function<DType(const GgufTensorPlace&)>& type_of,
                                          const PackedSafetensorsReader* packed) {
  std::map<std::string, size_t> packed_index;  // HF name -> layer of `packed`
  for (size_t k = 0; packed && k < packed->size(); ++k) packed_index[packed->scheme(k).name] = k;
  std::map<std::string, DType> out;
  for (const auto& [hf, type] : part_types(m, type_of)) {
    const Tensor* t = find_weight(m, hf);
    if (!has_code_grid(type) || !t || t->ndim() != 2 || t->dtype() == type) continue;
    const auto k = packed_index.find(hf);
    if (k != packed_index.end() && gguf_codes_misfit(packed->read(k->second), type).empty()) continue;
    out.emplace(hf, type);
  }
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

// Rows [r0, r0 + n) of part `s` in `type`, written to dst (from `codes` when given, else
// encoded from the source's values, weighted by `importance` per column when given);
// returns the squared error sums against the source.
// Stops early (rows left unwritten) once `cancel` fires: a chunk of an 8 B model's rows
// takes seconds, and the caller throws the export away.
ErrorSums fill_rows(const Part& s, DType type, const CompressedTensor* codes,
                    const float* importance, int64_t r0, int64_t n, char* dst,
                    const CancelToken* cancel) {
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
        if (cancel && cancel->cancelled()) return acc;
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

// The rope tensors llama.cpp reads: Llama 3's scaling as rope_freqs (rope_freq_factors.h),
// Phi-3's LongRoPE factors as rope_factors_short / rope_factors_long.
std::vector<Tensor> rope_tensors(const LlamaConfig& c) {
  std::vector<Tensor> out;
  auto add = [&](const std::vector<float>& f, const char* name) {
    out.push_back(Tensor::from_f32(f, {int64_t(f.size())}, name));
  };
  if (c.rope_scaling.enabled) add(llama3_rope_factors(c), "rope_freqs.weight");
  if (c.long_rope.enabled()) {
    const LongRope& l = c.long_rope;
    add(std::vector<float>(l.long_factor.begin(), l.long_factor.end()), "rope_factors_long.weight");
    add(std::vector<float>(l.short_factor.begin(), l.short_factor.end()), "rope_factors_short.weight");
  }
  return out;
}

std::vector<GGUFKeyValue> architecture_kvs(const LlamaModel& model, const std::string& path) {
  const LlamaConfig& c = model.cfg;
  const std::string arch = gguf_architecture(c);
  if (c.long_rope.enabled() && arch != "phi3")
    throw Error(path, "llama.cpp reads LongRoPE only for the phi3 architecture; this model is written as " + arch +
                          " (it has biases or a head width other than hidden_size / heads)");
  // llama.cpp reads per-layer head counts and MLP widths as arrays, but its llama graph
  // sizes q and the MLP from the first layer's; not written until a llama.cpp run shows it.
  if (!c.uniform())
    throw Error(
        path,
        "blocks of different widths (FLAP's global allocation) have no GGUF form MCW writes yet; "
        "export as HF safetensors");
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
  if (c.long_rope.enabled()) {  // as convert_hf_to_gguf writes Phi-3's
    u32("rope.scaling.original_context_length", c.long_rope.original_max_position);
    f32("rope.scaling.attn_factor", c.long_rope.attention_factor);
  }
  // llama.cpp runs without activation quantisation; the key lets MCW reproduce W8A8.
  if (const auto masks = activation_int8_masks(model); !masks.empty())
    kv.push_back({"mcw.activation_int8", GGUFValue::array(masks)});
  return kv;
}

}  // namespace

std::string gguf_architecture(const LlamaConfig& c) {
  // A Qwen2 is written as llama.cpp's qwen2 architecture (q/k/v biases, q/k rows in HF's
  // rotate-half order), a Phi-3 as its phi3 (q/k/v and gate/up fused, rotate-half order,
  // LongRoPE factors); anything else as its llama architecture, whose optional biases
  // hold structured pruning's compensation and q/k rows are in Meta's interleaved order.
  const std::string type = c.hf_model_type();
  return type == "qwen2" || type == "phi3" ? type : "llama";
}

GgufExportReport write_llama_gguf(const LlamaModel& model, const std::string& path,
                                  GgufWriteOptions w) {
  if (model.cfg.model_type == "gpt2")  // llama.cpp's gpt2 tensors and keys are not mapped yet
    throw Error(path, "GGUF export of a GPT-2 is not supported yet (export it as HF safetensors)");
  std::vector<GGUFKeyValue> kvs = architecture_kvs(model, path);
  for (GGUFKeyValue& kv : w.extra) kvs.push_back(std::move(kv));
  const std::vector<Tensor> rope = rope_tensors(model.cfg);  // the sources point into it
  const std::vector<Source> srcs = sources(model, rope);
  std::map<std::string, size_t> packed_index;  // HF name -> layer of w.packed
  for (size_t k = 0; w.packed && k < w.packed->size(); ++k) packed_index[w.packed->scheme(k).name] = k;
  GgufExportReport result;
  std::vector<GgufTensorOut> outs;
  std::vector<ErrorSums> sums(srcs.size());
  std::vector<std::vector<bool>> kept(srcs.size());  // per part: its codes went in as they are
  // The compressed layer of the part being written (one at a time: tensors are filled in
  // file order), when its codes go into the file as they are.
  const Part* codes_of = nullptr;
  std::optional<CompressedTensor> codes;
  uint64_t total = 0, done = 0;
  for (const Source& s : srcs) total += uint64_t(*checked_numel(s.shape));
  for (size_t i = 0; i < srcs.size(); ++i) {
    const Source& s = srcs[i];
    const DType type = w.type_of(s.place);
    result.tensors.emplace_back();
    result.tensors.back().name = s.name, result.tensors.back().type = type;
    kept[i].assign(s.parts.size(), false);
    std::vector<const float*> importance;  // llama.cpp's imatrix entry for each part's weight
    for (const Part& p : s.parts) {
      importance.push_back(nullptr);
      if (!w.importance) continue;
      if (const auto it = w.importance->find(p.hf); it != w.importance->end()) {
        if (int64_t(it->second.size()) != s.shape.back())
          throw Error(path, "importance of " + p.hf + " has " + std::to_string(it->second.size()) +
                                " columns, the weight " + std::to_string(s.shape.back()));
        importance.back() = it->second.data();
      }
    }
    outs.push_back({s.name, type, s.shape, [&, i, type, importance](int64_t r0, int64_t n, void* dst) {
                      if (w.cancel) w.cancel->throw_if_cancelled();
                      const Source& s = srcs[i];
                      for (size_t k = 0; k < s.parts.size(); ++k) {
                        const Part& p = s.parts[k];
                        const int64_t lo = std::max(r0, p.first_row),
                                      hi = std::min(r0 + n, p.first_row + p.t->shape()[0]);
                        if (lo >= hi) continue;
                        if (codes_of != &p) {
                          codes_of = &p, codes.reset();
                          if (const auto c = packed_index.find(p.hf); c != packed_index.end()) {
                            CompressedTensor ct = w.packed->read(c->second);
                            std::string& why = result.tensors[i].requantised_because;
                            const std::string misfit = gguf_codes_misfit(ct, type);
                            if (why.empty()) why = misfit;
                            kept[i][k] = misfit.empty();
                            if (misfit.empty()) codes = std::move(ct);
                          }
                        }
                        char* out = static_cast<char*>(dst) + size_t(lo - r0) * *dtype_bytes(type, uint64_t(s.shape.back()));
                        const ErrorSums e = fill_rows(p, type, codes ? &*codes : nullptr, importance[k],
                                                      lo - p.first_row, hi - lo, out, w.cancel);
                        if (w.cancel) w.cancel->throw_if_cancelled();
                        sums[i].diff += e.diff, sums[i].ref += e.ref;
                        sums[i].wdiff += e.wdiff, sums[i].wref += e.wref;
                      }
                      done += uint64_t(n * s.shape.back());
                      report(w.progress, "export", s.name, double(done) / double(total));
                    }});
  }
  write_gguf_streamed(path, kvs, outs);
  for (size_t i = 0; i < srcs.size() && w.requantised; ++i) {
    GgufGptqError e;  // the parts' sums, and the largest dampening they needed
    bool any = false;
    for (const Part& p : srcs[i].parts)
      if (const auto it = w.requantised->find(p.hf); it != w.requantised->end()) {
        any = true;
        e.diff += it->second.diff, e.ref += it->second.ref, e.out_ref += it->second.out_ref;
        e.out_diff += it->second.out_diff, e.baseline_out_diff += it->second.baseline_out_diff;
        e.percdamp = std::max(e.percdamp, it->second.percdamp);
      }
    if (!any) continue;
    result.tensors[i].gptq_damp = e.percdamp;
    sums[i].diff += e.diff, sums[i].ref += e.ref;  // beside parts whose codes were kept
    auto ratio = [&](double d) { return e.out_ref > 0 ? std::sqrt(d / e.out_ref) : 0.0; };
    result.tensors[i].gptq_output_error = ratio(e.out_diff);
    result.tensors[i].imatrix_output_error = ratio(e.baseline_out_diff);
  }
  for (size_t i = 0; i < srcs.size(); ++i) {
    result.tensors[i].rel_error = sums[i].ref > 0 ? std::sqrt(sums[i].diff / sums[i].ref) : 0;
    if (sums[i].wref > 0) result.tensors[i].weighted_rel_error = std::sqrt(sums[i].wdiff / sums[i].wref);
    result.tensors[i].codes_kept = std::all_of(kept[i].begin(), kept[i].end(), [](bool b) { return b; });
  }
  result.file_bytes = uint64_t(std::filesystem::file_size(path));
  return result;
}

// What a GPTQ pass's checkpoint must match to be gone on from: the model's contents, the
// file type, the calibration tokens and the type each re-quantised linear gets.
static nlohmann::json gptq_export_identity(const ModelFile& mf, const GgufFileType& type,
                                           const std::vector<std::vector<int32_t>>& windows,
                                           const std::map<std::string, DType>& targets) {
  Sha256 tokens;
  for (const std::vector<int32_t>& w : windows) {
    const uint64_t n = w.size();
    tokens.update(&n, sizeof n);
    tokens.update(w.data(), w.size() * sizeof(int32_t));
  }
  nlohmann::json types = nlohmann::json::object();
  for (const auto& [hf, t] : targets) types[hf] = dtype_name(t);
  return {{"format", 1},
          {"model", model_fingerprint(mf)},
          {"file_type", std::string(type.name)},
          {"calibration", {{"windows", windows.size()}, {"sha256", to_hex(tokens.finish())}}},
          {"types", types}};
}

GgufExportReport export_gguf(const std::string& model_path, const std::string& out,
                             const GgufFileType& type, const GgufExportOptions& o) {
  const ModelFile mf = open_model_file(model_path);
  LlamaModel model = load_llama(mf);
  GgufWriteOptions w;
  w.extra = gguf_tokenizer_kvs(mf, model.cfg.vocab_size);
  w.extra.push_back({"general.file_type", type.ftype});
  if (is_block_type(type.base)) w.extra.push_back({"general.quantization_version", uint32_t(2)});
  w.type_of = [&](const GgufTensorPlace& p) { return gguf_tensor_type(type, p); };
  std::optional<PackedSafetensorsReader> packed;
  if (const std::string p = find_packed_beside(model_path); !p.empty()) w.packed = &packed.emplace(p);
  ImportanceMatrix importance;
  std::map<std::string, GgufGptqError> requantised;
  std::optional<StagingDir> staging;  // of a resumable GPTQ pass
  std::optional<GgufGptqCheckpoint> checkpoint;
  const bool gptq = !o.calibration.empty() && o.method == GgufCalibration::Gptq;
  const double calibrated = o.calibration.empty() ? 0 : gptq ? 0.9 : 0.3;
  if (!o.calibration.empty()) {
    for (const std::vector<int32_t>& win : o.calibration)
      if (int64_t(win.size()) > model.cfg.max_seq_len)
        throw Error(model_path, "calibration windows of " + std::to_string(win.size()) +
                                    " tokens exceed the model's context of " +
                                    std::to_string(model.cfg.max_seq_len));
    const ProgressFn progress = progress_part(o.progress, 0, calibrated);
    if (!gptq) {
      importance = measure_importance(model, o.calibration, progress, o.cancel);
      w.importance = &importance;
    } else if (const std::map<std::string, DType> targets = gptq_targets(model, w.type_of, packed ? &*packed : nullptr);
               !targets.empty()) {
      GgufGptqOptions g;
      g.type_of = [&](const std::string& hf) -> std::optional<DType> {
        const auto t = targets.find(hf);
        return t == targets.end() ? std::nullopt : std::optional<DType>(t->second);
      };
      g.scratch_dir = std::filesystem::absolute(out).parent_path().string();
      g.progress = progress;
      g.cancel = o.cancel;
      if (o.resumable) {
        staging.emplace(out + ".gptq", StagingDir::Mode::Resumable);
        g.scratch_dir = staging->path().string();
        const std::optional<int64_t> done = GgufGptqCheckpoint::blocks_done(g.scratch_dir);
        if (done) staging->keep_on_failure();  // never lose a stopped export's work
        if (o.resume && !done)
          throw Error(g.scratch_dir, "holds no checkpoint to resume (run again without --resume)");
        if (!o.resume && done)
          throw Error(g.scratch_dir, "holds a stopped export (" + std::to_string(*done) + " of " +
                                         std::to_string(model.cfg.n_layers) +
                                         " blocks done): add --resume to go on with it, or "
                                         "remove the directory to start over");
        if (!done) staging->clear();
        g.checkpoint = &checkpoint.emplace(
            g.scratch_dir, gptq_export_identity(mf, type, o.calibration, targets));
        g.on_checkpoint = [&](int64_t next_block) {
          staging->keep_on_failure();
          if (o.on_checkpoint) o.on_checkpoint(next_block);
        };
        g.on_resume = o.on_resume;
      }
      requantised = gptq_for_gguf(model, o.calibration, g);
      w.requantised = &requantised;
    }
  }
  w.progress = progress_part(o.progress, calibrated, 1);
  w.cancel = o.cancel;
  GgufExportReport report = write_llama_gguf(model, out, std::move(w));
  if (staging) staging->keep_on_failure(false);  // written: the checkpoint goes with it
  return report;
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
