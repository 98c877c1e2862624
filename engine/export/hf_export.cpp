#include "engine/export/hf_export.h"

#include <filesystem>

#include "engine/core/error.h"
#include "engine/export/streamed_llama_writer.h"
#include "engine/io/model_file.h"
#include "engine/io/staging_dir.h"
#include "engine/model/tokenizer_loader.h"

namespace mcw {

HfExportReport export_hf(const std::string& model_path, const std::string& out_dir,
                         std::optional<DType> dtype, const ProgressFn& progress,
                         const CancelToken* cancel) {
  const ModelFile file = open_model_file(model_path);
  CompressionResult r;
  r.model = load_llama(file);
  HfExportReport out;
  out.dtype = dtype.value_or(StreamedLlamaWriter::output_dtype(r.model));
  if (out.dtype != DType::F32 && out.dtype != DType::F16 && out.dtype != DType::BF16)
    throw Error(out_dir, "a Hugging Face export is written in f32, f16 or bf16, not " +
                             std::string(dtype_name(out.dtype)));
  StagingDir staging(out_dir);
  // The writer mcw compress streams its blocks through, given the blocks as they are.
  StreamedLlamaWriter writer(staging.path().string(), out.dtype);
  const int64_t layers = r.model.cfg.n_layers;
  for (int64_t l = 0; l < layers; ++l) {
    if (cancel) cancel->throw_if_cancelled();
    BlockDone done;
    done.layer = l, done.resumable = false;
    writer.block_done(done, r);
    report(progress, "export", "block " + std::to_string(l), double(l + 1) / double(layers + 1));
  }
  if (cancel) cancel->throw_if_cancelled();
  writer.finish(r);
  out.tokenizer_files = write_tokenizer_files(file, staging.path().string());
  for (const auto& e : std::filesystem::directory_iterator(staging.path()))
    if (e.path().extension() == ".safetensors") ++out.shards, out.weight_bytes += e.file_size();
  staging.commit();
  for (std::string& f : out.tokenizer_files)
    f = (std::filesystem::path(out_dir) / std::filesystem::path(f).filename()).string();
  report(progress, "export", "", 1.0);
  return out;
}

}  // namespace mcw
