#include "engine/export/recovered_writer.h"

#include <map>

#include "engine/core/error.h"
#include "engine/export/streamed_llama_writer.h"
#include "engine/model/llama_tensors.h"

namespace mcw {

RecoveredModel write_recovered_model(const std::string& dir, const LlamaModel& base,
                                     const std::vector<CompressedTensor>& packed,
                                     const RecoveryResult& r, RecoveryMerge merge,
                                     const CancelToken* cancel, bool scratch) {
  std::map<std::string, const CompressedTensor*> packed_by;
  for (const CompressedTensor& c : packed) packed_by[c.name] = &c;
  std::map<std::string, const LoraAdapter*> adapted;
  for (const LoraAdapter& a : r.adapters.adapters) adapted[a.name] = &a;
  std::map<std::string, const Tensor*> trained;
  for (const auto& [name, t] : r.dense) trained[name] = &t;

  const DType dtype = StreamedLlamaWriter::output_dtype(base);
  StreamedLlamaWriter writer =
      scratch ? StreamedLlamaWriter::scratch(dir, dtype) : StreamedLlamaWriter(dir, dtype);
  CompressionResult out;
  out.model = base;  // views; each block's tensors become views of its written shard
  RecoveredModel result;
  for (int64_t l = 0; l < base.cfg.n_layers; ++l) {
    if (cancel) cancel->throw_if_cancelled();
    LlamaLayer& L = out.model.layers[size_t(l)];
    for (const BlockTensor& t : llama_block_tensors()) {
      if (!t.present(base.cfg)) continue;
      const std::string name = block_tensor_name(l, t);
      if (const auto d = trained.find(name); d != trained.end()) {
        if (d->second->shape() != (L.*t.member).shape())
          throw Error(name, "the trained weight's shape is not the model's");
        L.*t.member = *d->second;
        continue;
      }
      if (!t.linear()) continue;
      const auto p = packed_by.find(name);
      const auto a = adapted.find(name);
      if (merge == RecoveryMerge::Recode && p != packed_by.end()) {
        FoldedLayer f = fold_layer(*p->second, r);
        if (f.added_error) result.added_error.push_back({name, *f.added_error});
        // A layer the recovery left alone keeps the base's weight as written before.
        if (f.changed) L.*t.member = f.tensor.dequantize();
        CompressedLayer layer;
        layer.tensor = std::move(f.tensor), layer.algorithm = "recovered";
        out.layers.push_back(std::move(layer));
        ++result.packed_layers;
      } else if (a != adapted.end()) {  // merged dense: the frozen weight + s·B·A
        const Tensor frozen = p != packed_by.end() ? p->second->dequantize() : L.*t.member;
        L.*t.member = merge_lora(frozen, *a->second, r.adapters.scale());
      }
    }
    writer.block_done({.stage = 0, .stages = 1, .layer = l, .resumable = false, .hidden = nullptr},
                      out);
  }
  if (!scratch) writer.finish(out);
  result.model = std::move(out.model);
  for (CompressedLayer& l : out.layers) result.layers.push_back(std::move(l.tensor));
  return result;
}

}  // namespace mcw
