#include "app/studio/model_data.h"

namespace mcw::studio {

static bool is_embedding_table(const std::string& name) {
  return name == "token_embd.weight" || name == "model.embed_tokens.weight" ||
         name == "transformer.wte.weight" || name == "tok_embeddings.weight";
}

static bool has_output_projection(const ModelFile& m) {
  return m.find("output.weight") || m.find("lm_head.weight");
}

quint64 macs_per_token(const ModelFile& model, const Tensor& t) {
  if (t.ndim() != 2) return 0;
  if (is_embedding_table(t.name()) && has_output_projection(model)) return 0;
  return quint64(t.dim(0)) * quint64(t.dim(1));
}

ui::TensorStatsRow to_stats_row(const TensorStats& s) {
  ui::TensorStatsRow r;
  r.ready = true;
  r.min = s.min;
  r.max = s.max;
  r.mean = s.mean;
  r.std = s.std;
  r.zeros = s.zeros;
  r.nonfinite = s.nonfinite;
  return r;
}

OpenedModel open_model_for_view(const std::string& path) {
  auto file = std::make_shared<ModelFile>(open_model_file(path));
  OpenedModel out;
  ui::ModelSummary& s = out.summary;
  s.path = QString::fromStdString(path);
  s.format = QString::fromLatin1(model_format_name(file->format));
  s.architecture = QString::fromStdString(file->architecture);
  s.params = file->parameter_count();
  s.bytes = file->byte_count();
  s.tensors.reserve(qsizetype(file->tensors.size()));
  for (const Tensor& t : file->tensors) {
    ui::TensorRow r;
    r.name = QString::fromStdString(t.name());
    for (int64_t d : t.shape()) r.shape.push_back(d);
    const std::string_view dt = dtype_name(t.dtype());
    r.dtype = QString::fromLatin1(dt.data(), qsizetype(dt.size()));
    r.params = quint64(t.numel());
    r.bytes = t.nbytes();
    r.macs_per_token = macs_per_token(*file, t);
    s.tensors.push_back(std::move(r));
  }
  out.file = std::move(file);
  return out;
}

}  // namespace mcw::studio
