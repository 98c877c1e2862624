// mcw export: a compressed model in a format another runtime loads.
#include <cstdio>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "engine/export/compressed_tensors_export.h"

namespace mcw::cli {

const char* const kExportUsage =
    "usage: mcw export DIR --format compressed-tensors --out OUT\n\n"
    "Rewrites DIR, a model directory written by mcw compress (decoded weights plus\n"
    "packed.safetensors), as OUT in another runtime's format. So far one format:\n"
    "  compressed-tensors  llm-compressor's checkpoint layout, which vLLM loads: group-wise\n"
    "                      affine layers (RTN, GPTQ, act-order included) at 1, 2, 4 or 8 bits\n"
    "                      as pack-quantized parts with their codes unchanged and f16 scales;\n"
    "                      other layers (3/5/6/7 bits, sparse, outliers, codebooks, low rank,\n"
    "                      AWQ's unfolded input scale) are written dense and listed in the\n"
    "                      config's ignore list, each named here with the reason.\n"
    "mcw inspect OUT reads the result back (its layers decode to the f16-rounded values).\n";

int run_export(const std::vector<std::string>& argv) {
  Args args(argv, {"format", "out"}, {});
  if (args.positional().size() != 1)
    throw UsageError{"export takes one model directory (see mcw help export)"};
  const auto format = args.value("format");
  const auto out = args.value("out");
  if (!format || !out) throw UsageError{"export needs --format FORMAT and --out OUT"};
  if (*format != "compressed-tensors")
    throw UsageError{"export --format '" + *format + "': the formats are: compressed-tensors"};
  const CtExportReport r = export_compressed_tensors(args.positional()[0], *out);
  for (const auto& [name, why] : r.dense)
    std::printf("dense   %s (%s)\n", name.c_str(), why.c_str());
  std::printf("wrote   %s: %zu layers as pack-quantized parts, %zu dense\n", out->c_str(),
              r.packed.size(), r.dense.size());
  return 0;
}

}  // namespace mcw::cli
