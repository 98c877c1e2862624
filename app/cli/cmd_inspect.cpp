// mcw inspect: what is in a model file, printed as soon as it is known. The header and
// the tensor list come straight from the (memory-mapped) file; each tensor's statistics
// row follows as its parallel reduction finishes, so large files start printing at once.
#include <tbb/global_control.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/model_file.h"
#include "engine/kernels/tensor_stats.h"

namespace mcw::cli {

const char* const kInspectUsage =
    "usage: mcw inspect <model> [--json] [--no-stats] [--threads N]\n\n"
    "Shows a model's format, architecture and hyper-parameters, then one row per tensor:\n"
    "name, shape, dtype, parameters, bytes, min, max, mean, std and the share of zeros.\n"
    "<model> is a .safetensors, .gguf or llama2.c .bin file, or a Hugging Face directory\n"
    "(config.json + safetensors shards). When packed.safetensors (written by mcw compress)\n"
    "lies in the directory or beside the file, a table of its compressed layers follows:\n"
    "scheme, bits per weight and sparsity. A GPTQ or AWQ checkpoint (config.json with a\n"
    "quantization_config) lists its quantised layers as dtype 'packed', then their scheme.\n\n"
    "  --json        one machine-readable JSON document on stdout\n"
    "  --no-stats    skip the statistics (no tensor data is read)\n"
    "  --threads N   worker threads for the statistics (default: all cores)\n";

static std::string value_text(const nlohmann::ordered_json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

static nlohmann::ordered_json stats_json(const TensorStats& s) {
  nlohmann::ordered_json j;
  j["min"] = s.min;
  j["max"] = s.max;
  j["mean"] = s.mean;
  j["std"] = s.std;
  j["zeros_fraction"] = s.count ? double(s.zeros) / double(s.count) : 0.0;
  j["nonfinite"] = s.nonfinite;
  return j;
}

// What inspect shows of a packed layer; the layer itself (codes, scales) is not kept.
struct PackedRow {
  std::string name, coding, scheme;
  double bits_per_weight, sparsity;
  uint64_t storage_bytes;
};

// Every layer read (and so validated) one at a time: an 8 B model's codes are gigabytes.
static std::vector<PackedRow> packed_rows(const std::string& path) {
  const PackedSafetensorsReader reader(path);
  std::vector<PackedRow> rows;
  for (size_t i = 0; i < reader.size(); ++i) {
    const CompressedTensor t = reader.read(i);
    rows.push_back({t.name, std::string(coding_name(t.coding)), t.describe(), t.bits_per_weight(),
                    1.0 - double(t.kept_count()) / double(t.rows * t.cols),
                    (t.storage_bits() + 7) / 8});
  }
  return rows;
}

static int inspect_json(const ModelFile& m, bool stats, const std::vector<PackedRow>& packed) {
  nlohmann::ordered_json doc;
  doc["path"] = m.path;
  doc["format"] = model_format_name(m.format);
  doc["architecture"] = m.architecture;
  doc["hparams"] = m.hparams;
  doc["metadata"] = m.metadata;
  auto& list = doc["tensors"] = nlohmann::ordered_json::array();
  for (const Tensor& t : m.tensors) {
    nlohmann::ordered_json j;
    j["name"] = t.name();
    j["shape"] = t.shape();
    j["dtype"] = dtype_name(t.dtype());
    j["parameters"] = t.numel();
    j["bytes"] = t.nbytes();
    if (const TensorDecoder* d = t.decoder()) j["scheme"] = d->describe();
    if (!t.readable()) j["readable"] = false;
    if (stats && t.readable()) j["stats"] = stats_json(tensor_stats(t));
    list.push_back(std::move(j));
  }
  doc["totals"] = {{"tensors", m.tensors.size()},
                   {"parameters", m.parameter_count()},
                   {"bytes", m.byte_count()}};
  if (!packed.empty()) {
    auto& layers = doc["packed_layers"] = nlohmann::ordered_json::array();
    for (const PackedRow& t : packed)
      layers.push_back({{"name", t.name}, {"coding", t.coding},
                        {"scheme", t.scheme}, {"bits_per_weight", t.bits_per_weight},
                        {"sparsity", t.sparsity}, {"storage_bytes", t.storage_bytes}});
  }
  // Names come from untrusted files: replace invalid UTF-8 rather than fail the dump.
  std::printf("%s\n", doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return 0;
}

// Layers a quantised checkpoint (GPTQ, AWQ) stores as parts, with the scheme its config
// and parts describe.
static void print_checkpoint_layers(const ModelFile& m) {
  size_t w = 5, n = 0;
  for (const Tensor& t : m.tensors)
    if (t.decoder()) w = std::max(w, t.name().size()), ++n;
  if (!n) return;
  std::printf("\nquantised layers (%zu, as the file stores them)\n", n);
  std::printf("%-*s  %-32s %8s\n", int(w), "layer", "scheme", "bits/w");
  for (const Tensor& t : m.tensors)
    if (const TensorDecoder* d = t.decoder())
      std::printf("%-*s  %-32s %8.3f\n", int(w), t.name().c_str(), d->describe().c_str(),
                  8.0 * double(t.nbytes()) / double(t.numel()));
}

static int inspect_text(const ModelFile& m, bool stats) {
  std::printf("model         %s\n", m.path.c_str());
  std::printf("format        %s\n", model_format_name(m.format));
  std::printf("architecture  %s\n", m.architecture.empty() ? "(not stated)" : m.architecture.c_str());
  if (!m.hparams.empty()) {
    std::printf("hyper-parameters\n");
    for (const auto& [k, v] : m.hparams.items())
      std::printf("  %-40s %s\n", k.c_str(), value_text(v).c_str());
  }
  bool header = false;  // GGUF repeats general.* strings in hparams: show them once
  for (const auto& [k, v] : m.metadata) {
    if (m.hparams.contains(k)) continue;
    if (!header) std::printf("metadata\n"), header = true;
    std::printf("  %-40s %s\n", k.c_str(), v.c_str());
  }
  size_t w = 4, sw = 5;
  for (const Tensor& t : m.tensors) {
    w = std::max(w, t.name().size());
    sw = std::max(sw, shape_string(t.shape()).size());
  }
  std::printf("\n%-*s  %-*s  %-7s %10s %11s", int(w), "name", int(sw), "shape", "dtype",
              "params", "bytes");
  if (stats) std::printf(" %11s %11s %11s %11s %7s", "min", "max", "mean", "std", "zeros");
  std::printf("\n");
  std::fflush(stdout);
  for (const Tensor& t : m.tensors) {
    std::printf("%-*s  %-*s  %-7s %10s %11s", int(w), t.name().c_str(), int(sw),
                shape_string(t.shape()).c_str(), std::string(dtype_name(t.dtype())).c_str(),
                human_count(uint64_t(t.numel())).c_str(), human_bytes(t.nbytes()).c_str());
    if (stats && !t.readable()) {
      std::printf("  (%s)", t.decoder()->describe().c_str());
    } else if (stats) {
      const TensorStats s = tensor_stats(t);
      std::printf(" %11s %11s %11s %11s %6.2f%%", short_float(s.min).c_str(),
                  short_float(s.max).c_str(), short_float(s.mean).c_str(),
                  short_float(s.std).c_str(),
                  s.count ? 100.0 * double(s.zeros) / double(s.count) : 0.0);
      if (s.nonfinite) std::printf("  (%llu NaN/Inf)", (unsigned long long)s.nonfinite);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  print_checkpoint_layers(m);
  const uint64_t params = m.parameter_count(), bytes = m.byte_count();
  std::printf("\ntotal         %zu tensors, %s parameters, %s", m.tensors.size(),
              human_count(params).c_str(), human_bytes(bytes).c_str());
  if (params) std::printf(" (%.2f bits per weight)", 8.0 * double(bytes) / double(params));
  std::printf("\n");
  return 0;
}

static void print_packed(const std::string& path, const std::vector<PackedRow>& packed) {
  size_t w = 5, sw = 6;
  for (const PackedRow& t : packed) {
    w = std::max(w, t.name.size());
    sw = std::max(sw, t.scheme.size());
  }
  std::printf("\npacked        %s (%zu compressed layers)\n", path.c_str(), packed.size());
  std::printf("%-*s  %-*s %8s %9s\n", int(w), "layer", int(sw), "scheme", "bits/w", "sparsity");
  for (const PackedRow& t : packed)
    std::printf("%-*s  %-*s %8.3f %8.2f%%\n", int(w), t.name.c_str(), int(sw), t.scheme.c_str(),
                t.bits_per_weight, 100.0 * t.sparsity);
}

int run_inspect(const std::vector<std::string>& argv) {
  Args args(argv, {"threads"}, {"json", "no-stats"});
  if (args.positional().size() != 1) throw UsageError{"inspect takes one model path (see mcw help inspect)"};
  std::unique_ptr<tbb::global_control> threads;
  if (const long long n = args.int_or("threads", 0); n > 0)
    threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, size_t(n));
  const ModelFile m = open_model_file(args.positional()[0]);
  const bool stats = !args.flag("no-stats");
  // Read (and so validated) before anything prints: a bad file is one error, not half a table.
  const std::string packed_path = find_packed_beside(args.positional()[0]);
  const std::vector<PackedRow> packed =
      packed_path.empty() ? std::vector<PackedRow>{} : packed_rows(packed_path);
  if (args.flag("json")) return inspect_json(m, stats, packed);
  const int rc = inspect_text(m, stats);
  if (!packed_path.empty()) print_packed(packed_path, packed);
  return rc;
}

}  // namespace mcw::cli
