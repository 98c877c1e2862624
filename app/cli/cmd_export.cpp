// mcw export: a compressed model in a format another runtime loads.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/progress_bar.h"
#include "engine/export/compressed_tensors_export.h"
#include "engine/compress/calibrate.h"
#include "engine/export/gguf_export.h"
#include "engine/export/hf_export.h"
#include "engine/io/checkpoint_manifest.h"
#include "engine/runs/run_export.h"
#include "engine/model/llama_config.h"
#include "engine/model/tokenizer_loader.h"

namespace mcw::cli {

const char* const kExportUsage =
    "usage: mcw export MODEL --format gguf --type TYPE --out OUT.gguf [--calib TEXT\n"
    "                  [--method imatrix|gptq [--resume]] [--windows N] [--window L]]\n"
    "       mcw export DIR --format compressed-tensors --out OUT\n"
    "       mcw export MODEL --format hf --out DIR [--dtype f16|bf16|f32]\n"
    "       mcw export PROJECT --run ID --format hf|gguf|compressed-tensors --out OUT\n"
    "                  [--type TYPE] [--method gptq|imatrix|none]\n\n"
    "Rewrites a model in another runtime's format:\n"
    "  gguf                llama.cpp's file. MODEL is anything MCW opens as a Llama-family\n"
    "                      model (an HF or mcw compress directory, a GGUF, a llama2.c file).\n"
    "                      --type is a llama-quantize file type (F32 F16 BF16 Q8_0 Q4_0\n"
    "                      Q4_1 Q5_0 Q5_1 Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K): each tensor gets\n"
    "                      the type llama.cpp's mix gives it and is encoded from MODEL's\n"
    "                      values as llama-quantize does without an importance matrix.\n"
    "                      Prints each tensor's type and relative error against MODEL\n"
    "                      (what the GGUF adds to an mcw compress result). Layers mcw\n"
    "                      compress wrote as exactly Q8_0/Q4_0/Q5_0/Q4_1/Q5_1 blocks (affine,\n"
    "                      groups of 32, e.g. rtn bits 4 symmetric → Q4_0) keep their codes;\n"
    "                      the others say why they were re-quantised. With --calib, the\n"
    "                      importance matrix llama-imatrix would measure (mean x² per input\n"
    "                      column over N windows of L tokens of TEXT, default 32 x 512)\n"
    "                      weights the encoding as llama-quantize --imatrix does, and each\n"
    "                      weight's activation-weighted error is printed too. With --method\n"
    "                      gptq, every linear whose type has an affine grid (Q8_0 Q4_0 Q4_1\n"
    "                      Q5_0 Q5_1 Q4_K Q5_K Q6_K) is re-quantised by GPTQ with the block\n"
    "                      format as its grid instead (blocks fitted with XᵀX's diagonal as the\n"
    "                      importance, codes chosen with GPTQ's error feedback, block by block\n"
    "                      on the inputs of the already re-quantised blocks before it), and\n"
    "                      each prints its output error on its calibration inputs beside that\n"
    "                      of the --imatrix encoding. The GPTQ pass keeps a checkpoint after\n"
    "                      every block in OUT.gguf.gptq.partial: a stopped export (Ctrl-C, a\n"
    "                      kill, a full disk) goes on from there with --resume and writes the\n"
    "                      same file an uninterrupted one would. The tokenizer is\n"
    "                      written too (byte-level BPE, byte and llama2.c vocabularies).\n"
    "  compressed-tensors  llm-compressor's checkpoint layout, which vLLM loads. DIR is a\n"
    "                      model directory written by mcw compress: group-wise affine layers\n"
    "                      (RTN, GPTQ, AWQ, act-order included) at 1, 2, 4 or 8 bits go out\n"
    "                      as pack-quantized parts with their codes unchanged and f16 scales\n"
    "                      (AWQ's input scales folded into the norms and v/up rows before\n"
    "                      them, as AutoAWQ does); other layers (3/5/6/7 bits, sparse,\n"
    "                      outliers, codebooks, low rank) are written dense and listed in the\n"
    "                      config's ignore list, each named here with the reason.\n"
    "  hf                  a Hugging Face checkpoint of MODEL's decoded weights (a GGUF of any\n"
    "                      type MCW reads, a GPTQ/AWQ/compressed-tensors checkpoint, ...),\n"
    "                      one shard per block, in --dtype (default: the source's own 16-bit\n"
    "                      or f32 dtype, else f16), config.json with the model's architecture,\n"
    "                      and its tokenizer (a GGUF's byte-level BPE vocabulary as\n"
    "                      tokenizer.json and tokenizer_config.json, a SentencePiece one as\n"
    "                      MCW's mcw_tokenizer.json).\n"
    "With --run, the model of a finished run of PROJECT: its recipe compressed again with\n"
    "the project's calibration text (resumable: a stopped export goes on from its last\n"
    "block), written in the format, and recorded as an artifact of the run; a GGUF's blocks\n"
    "that the run's codes do not fill are re-quantised with the calibration text by --method\n"
    "(default gptq), as the studio's File > Export model does.\n"
    "mcw inspect OUT reads the result back.\n";

namespace {

int export_gguf_file(const std::string& model, const std::string& out, const std::string& type,
                     const Args& args) {
  const GgufFileType* ft = find_gguf_file_type(type);
  if (!ft)
    throw UsageError{"export --type '" + type + "': the GGUF types are: " + gguf_file_type_list()};
  const SigintCancel sigint;
  GgufExportOptions o;
  o.cancel = &sigint.token();
  if (const auto calib = args.value("calib")) {
    const ModelFile file = open_model_file(model);
    const int64_t context = llama_config_from(file).max_seq_len;
    const auto ids = load_tokenizer(file)->encode(read_text_file(*calib), false);
    o.calibration = calibration_windows(ids, args.int_or("windows", 32),
                                        std::min<long long>(args.int_or("window", 512), context));
    if (o.calibration.empty()) throw Error(*calib, "no calibration tokens");
    const std::string method = args.value("method").value_or("imatrix");
    if (method != "imatrix" && method != "gptq")
      throw UsageError{"export --method '" + method + "': the methods are: imatrix, gptq"};
    o.method = method == "gptq" ? GgufCalibration::Gptq : GgufCalibration::Importance;
    o.resumable = o.method == GgufCalibration::Gptq;
    o.resume = args.flag("resume");
    if (o.resume && !o.resumable) throw UsageError{"--resume is for --method gptq"};
    // Fault injection for the resume test: a kill right after the N-th checkpoint.
    if (const char* kill_after = std::getenv("MCW_FAULT_KILL_AFTER_CHECKPOINT"))
      o.on_checkpoint = [n = std::atoi(kill_after), seen = 0](int64_t) mutable {
        if (++seen == n) std::raise(SIGKILL);
      };
  } else if (args.value("windows") || args.value("window") || args.value("method") ||
             args.flag("resume")) {
    throw UsageError{"--method, --windows, --window and --resume are for --calib"};
  }
  const std::string checkpoint = out + ".gptq.partial";
  const auto checkpoint_kept = [&] {
    return o.resumable && std::filesystem::exists(checkpoint + "/" + kCheckpointManifest);
  };
  o.on_resume = [&](int64_t done, int64_t blocks) {
    std::fprintf(stderr, "mcw: resuming %s (%lld of %lld blocks done)\n", checkpoint.c_str(),
                 static_cast<long long>(done), static_cast<long long>(blocks));
  };
  GgufExportReport r;
  try {
    ProgressBar bar("export");
    o.progress = bar.callback();
    r = export_gguf(model, out, *ft, o);
  } catch (const Cancelled&) {
    if (checkpoint_kept())
      std::fprintf(stderr, "mcw: export cancelled; the blocks done are kept in %s: add --resume to go on\n",
                   checkpoint.c_str());
    else
      std::fprintf(stderr, "mcw: export cancelled; nothing written to %s\n", out.c_str());
    return 130;
  } catch (const Error& e) {
    if (!checkpoint_kept() || e.file() == checkpoint)
      throw;
    throw Error(e.file(), e.message() + " (the blocks done are kept in " + checkpoint + ": add --resume to go on)");
  }
  double worst = 0;
  int kept = 0;
  for (const GgufExportTensor& t : r.tensors) {
    const std::string note = t.codes_kept ? "  (MCW's codes kept)"
                             : t.requantised_because.empty()
                                 ? ""
                                 : "  (re-quantised: " + t.requantised_because + ")";
    char weighted[96] = "";
    if (t.weighted_rel_error)
      std::snprintf(weighted, sizeof weighted, "  act-weighted %.5f", *t.weighted_rel_error);
    if (t.gptq_output_error)
      std::snprintf(weighted, sizeof weighted, "  output %.5f (imatrix %.5f)%s", *t.gptq_output_error,
                    *t.imatrix_output_error, t.gptq_damp > 0.01 ? "  damp raised" : "");
    std::printf("%-7s %-32s rel.err %.5f%s%s\n", std::string(dtype_name(t.type)).c_str(),
                t.name.c_str(), t.rel_error, weighted, note.c_str());
    worst = std::max(worst, t.rel_error);
    kept += t.codes_kept;
  }
  std::printf("wrote   %s: %s, %zu tensors (%d with MCW's codes kept), %.1f MiB, largest rel.err %.5f\n",
              out.c_str(), std::string(ft->name).c_str(), r.tensors.size(), kept,
              double(r.file_bytes) / (1 << 20), worst);
  return 0;
}

int export_hf_directory(const std::string& model, const std::string& out,
                        const std::optional<std::string>& dtype_name) {
  std::optional<DType> dtype;
  if (dtype_name) {
    const std::string d = *dtype_name;
    if (d != "f16" && d != "bf16" && d != "f32")
      throw UsageError{"export --dtype '" + d + "': the dtypes are: f16, bf16, f32"};
    dtype = d == "f16" ? DType::F16 : d == "bf16" ? DType::BF16 : DType::F32;
  }
  const SigintCancel sigint;
  HfExportReport r;
  try {
    ProgressBar bar("export");
    r = export_hf(model, out, dtype, bar.callback(), &sigint.token());
  } catch (const Cancelled&) {
    std::fprintf(stderr, "mcw: export cancelled; nothing written to %s\n", out.c_str());
    return 130;
  }
  std::printf("wrote   %s: %s, %lld shards, %.1f MiB", out.c_str(),
              std::string(mcw::dtype_name(r.dtype)).c_str(), (long long)r.shards,
              double(r.weight_bytes) / double(1 << 20));
  if (r.tokenizer_files.empty())
    std::printf("; no tokenizer (MCW cannot write this source's tokenizer as HF files)");
  std::printf("\n");
  return 0;
}

int export_project_run(const std::string& project, const std::string& run, const std::string& format,
                       const std::string& out, const Args& args) {
  for (const char* o : {"calib", "windows", "window", "dtype"})
    if (args.value(o)) throw UsageError{"--" + std::string(o) + " is not for --run (the project says)"};
  const int64_t id = parse_run_id(run, "export --run");
  RunExportOptions o;
  if (format == "gguf") {
    o.format = RunExportFormat::Gguf;
    const auto type = args.value("type");
    if (!type) throw UsageError{"export --format gguf needs --type (e.g. Q4_K_M)"};
    o.gguf_type = find_gguf_file_type(*type);
    if (!o.gguf_type)
      throw UsageError{"export --type '" + *type + "': the GGUF types are: " + gguf_file_type_list()};
    const std::string method = args.value("method").value_or("gptq");
    if (method != "gptq" && method != "imatrix" && method != "none")
      throw UsageError{"export --method '" + method + "': the methods are: gptq, imatrix, none"};
    o.gguf_calibration = method == "gptq"      ? GgufRequantise::Gptq
                         : method == "imatrix" ? GgufRequantise::Imatrix
                                               : GgufRequantise::None;
  } else if (format == "hf" || format == "compressed-tensors") {
    if (args.value("type") || args.value("method"))
      throw UsageError{"--type and --method are for --format gguf"};
    o.format = format == "hf" ? RunExportFormat::HuggingFace : RunExportFormat::CompressedTensors;
  } else {
    throw UsageError{"export --format '" + format + "': the formats are: gguf, compressed-tensors, hf"};
  }
  const SigintCancel sigint;
  o.cancel = &sigint.token();
  o.log = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
  RunExport e;
  try {
    ProgressBar bar("export");
    o.progress = bar.callback();
    e = export_run(project, id, out, o);
  } catch (const Cancelled&) {
    std::fprintf(stderr, "mcw: export cancelled; nothing written to %s\n", out.c_str());
    return 130;
  }
  std::printf("%s\n", describe_run_export(e, id, out).c_str());
  return 0;
}

}  // namespace

int run_export(const std::vector<std::string>& argv) {
  Args args(argv, {"format", "out", "type", "calib", "method", "windows", "window", "dtype", "run"},
            {"resume"});
  if (args.positional().size() != 1)
    throw UsageError{"export takes one model (see mcw help export)"};
  const auto format = args.value("format");
  const auto out = args.value("out");
  if (!format || !out) throw UsageError{"export needs --format FORMAT and --out OUT"};
  if (const auto run = args.value("run"))
    return export_project_run(args.positional()[0], *run, *format, *out, args);
  if (*format == "gguf") {
    if (args.value("dtype")) throw UsageError{"--dtype is for --format hf"};
    const auto type = args.value("type");
    if (!type) throw UsageError{"export --format gguf needs --type (e.g. Q4_K_M)"};
    return export_gguf_file(args.positional()[0], *out, *type, args);
  }
  for (const char* o : {"type", "calib", "method", "windows", "window"})
    if (args.value(o)) throw UsageError{"--" + std::string(o) + " is for --format gguf"};
  if (args.flag("resume")) throw UsageError{"--resume is for --format gguf --method gptq"};
  if (*format == "hf") return export_hf_directory(args.positional()[0], *out, args.value("dtype"));
  if (args.value("dtype")) throw UsageError{"--dtype is for --format hf"};
  if (*format != "compressed-tensors")
    throw UsageError{"export --format '" + *format +
                     "': the formats are: gguf, compressed-tensors, hf"};
  const CtExportReport r = export_compressed_tensors(args.positional()[0], *out);
  for (const auto& [name, why] : r.dense)
    std::printf("dense   %s (%s)\n", name.c_str(), why.c_str());
  std::printf("wrote   %s: %zu layers as pack-quantized parts, %zu as sparse-24-bitmask, %zu dense\n",
              out->c_str(), r.packed.size(), r.sparse24.size(), r.dense.size());
  if (!r.awq_folded.empty())
    std::printf("        %zu AWQ input scales folded into the norms and the v/up rows before them\n",
                r.awq_folded.size());
  return 0;
}

}  // namespace mcw::cli
