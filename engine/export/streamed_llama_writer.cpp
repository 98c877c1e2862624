#include "engine/export/streamed_llama_writer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"
#include "engine/io/safetensors_stream.h"

namespace fs = std::filesystem;

namespace mcw {

namespace {

std::string block_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

// The dtype `t` is written in: `dtype` for matrices, f32 for vectors (norms, biases).
DType written_dtype(const Tensor& t, DType dtype) { return t.ndim() == 2 ? dtype : DType::F32; }

// `t`'s values in `want` (F32, F16 or BF16), handed to `sink(bytes, size)` in pieces: whole
// rows decoded a few MB at a time, so that a GGUF or checkpoint embedding of 128 k rows is
// never whole in f32.
template <class Sink>
void for_each_converted_chunk(const Tensor& t, DType want, const Sink& sink) {
  const size_t n = size_t(t.numel()), out_bytes = size_t(dtype_info(want).block_bytes);
  if (t.dtype() == want) return sink(t.data(), t.nbytes());
  const size_t row = std::max<size_t>(1, t.ndim() == 2 ? size_t(t.dim(1)) : n);
  const size_t chunk = std::max<size_t>(1, (size_t(1) << 20) / row) * row;  // ~4 MB of f32
  std::vector<float> v(std::min(chunk, n));
  std::vector<std::byte> bytes(v.size() * out_bytes);
  for (size_t first = 0; first < n; first += chunk) {
    const size_t count = std::min(chunk, n - first);
    if (t.dtype() == DType::F32)
      from_f32(want, t.as<float>() + first, bytes.data(), count);
    else
      t.to_f32(v.data(), first, count), from_f32(want, v.data(), bytes.data(), count);
    sink(bytes.data(), count * out_bytes);
  }
}

// `t` in its written dtype, sharing its bytes when it already is.
Tensor converted(const Tensor& t, DType dtype) {
  const DType want = written_dtype(t, dtype);
  if (t.dtype() == want) return t;
  Tensor out = Tensor::zeros(want, t.shape(), t.name());
  auto* at = static_cast<std::byte*>(out.mutable_data());
  for_each_converted_chunk(t, want, [&](const void* p, size_t n) {
    std::memcpy(at, p, n);
    at += n;
  });
  return out;
}

// The "mcw.packed" layer lists of several packed files as one file's (raw merge: the
// parts are copied from the mapped files as they are).
void merge_packed(const std::string& out, const std::vector<std::string>& parts) {
  std::vector<SafetensorsFile> files;
  std::vector<Tensor> tensors;
  nlohmann::json meta;
  meta["version"] = kPackedFormatVersion;
  meta["layers"] = nlohmann::json::array();
  for (const std::string& p : parts) {
    files.push_back(read_safetensors(p));
    const auto j = nlohmann::json::parse(files.back().metadata.at(kPackedMetadataKey));
    for (const auto& l : j.at("layers")) meta["layers"].push_back(l);
    tensors.insert(tensors.end(), files.back().tensors.begin(), files.back().tensors.end());
  }
  write_safetensors(out, tensors, {{kPackedMetadataKey, meta.dump()}});
}

}  // namespace

StreamedLlamaWriter::StreamedLlamaWriter(std::string dir, DType dtype, nlohmann::json run_identity)
    : dir_(std::move(dir)), dtype_(dtype), identity_(std::move(run_identity)) {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    throw Error(dir_, "compressed models are written in f32, f16 or bf16, not " + std::string(dtype_name(dtype)));
}

DType StreamedLlamaWriter::output_dtype(const LlamaModel& source) {
  // A weight read through a decoder (a GPT-2's Conv1D view, a checkpoint's codes) says
  // nothing of the file's float type; the embedding does.
  const Tensor& probe = source.layers.empty() || source.layers[0].wq.dtype() == DType::Packed
                            ? source.tok_embd
                            : source.layers[0].wq;
  const DType t = probe.empty() ? DType::F32 : probe.dtype();
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 ? t : DType::F16;
}

StreamedLlamaWriter StreamedLlamaWriter::scratch(std::string dir, DType dtype,
                                                 nlohmann::json run_identity) {
  StreamedLlamaWriter w(std::move(dir), dtype, std::move(run_identity));
  w.scratch_ = true;
  return w;
}

std::string StreamedLlamaWriter::path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

std::string StreamedLlamaWriter::shard_name(int64_t index, int64_t count) const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05lld-of-%05lld.safetensors", (long long)index + 1,
                (long long)count);
  return buf;
}

std::vector<std::string> StreamedLlamaWriter::write_and_map(CompressionResult& r, const std::vector<std::string>& names,
                                        const std::string& path, DType matrices,
                                        std::vector<Tensor> extra) {
  std::map<std::string, Tensor*> slots;
  for (auto& [n, t] : r.model.named_tensors()) slots[n] = t;
  const LlamaConfig& c = r.model.cfg;
  std::vector<std::string> written;
  if (c.own_file_layout()) {  // fused, renamed or transposed as the file holds them: copies
    std::vector<Tensor> ts;
    for (const std::string& n : names) {
      Tensor t = converted(*slots.at(n), matrices);
      t.set_name(n);
      ts.push_back(std::move(t));
    }
    for (Tensor& t : extra) ts.push_back(std::move(t));
    ts = hf_fused(c, std::move(ts));
    write_safetensors(path, ts, {{"format", "pt"}});
    for (const Tensor& t : ts) written.push_back(t.name());
  } else {  // each tensor converted straight into the file, a few MB at a time
    std::vector<const Tensor*> ts;
    std::vector<SafetensorsEntry> entries;
    for (const std::string& n : names) ts.push_back(slots.at(n)), written.push_back(n);
    for (const Tensor& t : extra) ts.push_back(&t), written.push_back(t.name());
    for (size_t i = 0; i < ts.size(); ++i)
      entries.push_back({written[i], written_dtype(*ts[i], matrices), ts[i]->shape()});
    SafetensorsStreamWriter out(path, entries, {{"format", "pt"}});
    for (size_t i = 0; i < ts.size(); ++i)
      for_each_converted_chunk(*ts[i], entries[i].dtype,
                               [&](const void* p, size_t n) { out.write(p, n); });
    out.commit();
  }
  // Matrices become views of the file; vectors (norms, biases: a few KiB a block) stay
  // owned, since later stages change some in place (SmoothQuant folds into the norms).
  SafetensorsFile f = read_safetensors(path);
  for (Tensor& t : hf_unfused(c, std::move(f.tensors)))
    if (t.ndim() == 2) {
      const std::string name = t.name();
      *slots.at(name) = std::move(t);
    }
  return written;
}

void StreamedLlamaWriter::block_done(const BlockDone& d, CompressionResult& r) {
  const int64_t layer = d.layer;
  const std::string prefix = block_prefix(layer);
  std::vector<std::string> names;
  for (const auto& [n, t] : r.model.named_tensors())
    if (n.starts_with(prefix)) names.push_back(n);
  std::vector<const CompressedTensor*> packed;
  for (const CompressedLayer& l : r.layers)
    if (l.tensor.name.starts_with(prefix)) packed.push_back(&l.tensor);
  const bool resumable = !identity_.is_null();
  if (block_file_.empty()) block_file_.resize(size_t(r.model.cfg.n_layers));
  auto replaces = [&](const std::string& file) {
    std::string& f = block_file_[size_t(layer)];
    if (!f.empty() && f != file) garbage_.push_back(f);
    f = file;
  };

  if (!d.last()) {
    // A later stage reads these again: f32 in a scratch shard, mapped. Unlinked at once
    // (the mapping keeps the pages) unless a checkpoint needs it, with the block's
    // compressed layers, whose payloads stay in memory until the last stage writes them.
    const std::string stem = ".stage" + std::to_string(d.stage) + "-" + std::to_string(layer);
    const std::string scratch = path(stem + ".safetensors");
    write_and_map(r, names, scratch, DType::F32);
    // A Dense record decodes to the weight the model runs (the structured stages record the
    // sliced weights so): it can be a view of the block just mapped instead of a second f32
    // copy, which the records of every block would otherwise hold until the last stage.
    std::map<std::string, const Tensor*> mapped;
    for (auto& [n, t] : r.model.named_tensors())
      if (n.starts_with(prefix)) mapped[n] = t;
    for (CompressedLayer& l : r.layers)
      if (l.tensor.coding == WeightCoding::Dense && l.tensor.name.starts_with(prefix))
        if (const auto it = mapped.find(l.tensor.name);
            it != mapped.end() && it->second->dtype() == DType::F32 && it->second->data() &&
            it->second->shape() == Shape{l.tensor.rows, l.tensor.cols})
          l.tensor.dense = *it->second;
    if (!resumable) return void(fs::remove(scratch));
    replaces(scratch);
    if (!packed.empty()) {
      const std::string part = path(stem + "-packed.safetensors");
      write_packed_safetensors(part, packed);
      garbage_.push_back(part);  // removed once no layer's payload_of_ names it
      for (const CompressedTensor* t : packed) payload_of_[t->name] = part;
    }
  } else {
    const int64_t shards = r.model.cfg.n_layers + 1;
    const std::string shard = shard_name(layer, shards);
    for (const std::string& n :
         write_and_map(r, names, path(shard), dtype_, hf_zero_biases(r.model.cfg, layer)))
      weight_map_[n] = shard;
    total_bytes_ += fs::file_size(path(shard));
    if (resumable) replaces(path(shard));
    if (!packed.empty() && (!scratch_ || resumable)) {
      const std::string part = path(".packed-" + std::to_string(layer) + ".safetensors");
      write_packed_safetensors(part, packed);
      if (scratch_) {  // payloads stay in memory; the checkpoint names where they are kept
        for (const CompressedTensor* t : packed) {
          if (const auto it = payload_of_.find(t->name); it != payload_of_.end() && it->second != part)
            garbage_.push_back(it->second);
          payload_of_[t->name] = part;
        }
      } else {
        packed_parts_.push_back(part);
        for (CompressedLayer& l : r.layers)
          if (l.tensor.name.starts_with(prefix)) l.tensor.drop_payload(), payload_of_.erase(l.tensor.name);
      }
    }
  }
  if (resumable && d.resumable) write_checkpoint(d, r);
}

void StreamedLlamaWriter::finish(CompressionResult& r, const TokenizerFiles& tok) {
  const int64_t shards = r.model.cfg.n_layers + 1;
  const std::string shard = shard_name(shards - 1, shards);
  std::vector<std::string> rest;
  for (const auto& [n, t] : r.model.named_tensors())
    if (!n.starts_with("model.layers.")) rest.push_back(n);
  for (const std::string& n : write_and_map(r, rest, (fs::path(dir_) / shard).string(), dtype_))
    weight_map_[n] = shard;
  total_bytes_ += fs::file_size(fs::path(dir_) / shard);

  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total_bytes_}};
  index["weight_map"] = nlohmann::ordered_json::object();
  for (const auto& [n, shard_of] : weight_map_) index["weight_map"][n] = shard_of;
  write_file_atomically((fs::path(dir_) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
  save_llama_hf_config(r.model, dir_, tok);

  if (!packed_parts_.empty()) merge_packed((fs::path(dir_) / kPackedFileName).string(), packed_parts_);
  // A resumable writer keeps its parts and checkpoint until the caller has the rest of the
  // output written too (discard_checkpoint): a failure until then can still be resumed.
  if (identity_.is_null()) discard_checkpoint();
}

void StreamedLlamaWriter::discard_checkpoint() {
  for (const std::string& p : packed_parts_) fs::remove(p);
  packed_parts_.clear();
  remove_checkpoint();
}

}  // namespace mcw
