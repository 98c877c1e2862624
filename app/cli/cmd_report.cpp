// mcw report: a review report of a project's runs, as self-contained HTML, Markdown or CSV.
#include <cstdio>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "engine/report/report_data.h"
#include "engine/report/report_writer.h"

namespace mcw::cli {

const char* const kReportUsage =
    "usage: mcw report <project.mcwproj> --out FILE\n\n"
    "Writes a report of the project's recorded runs for review. The format follows FILE's\n"
    "extension:\n"
    "  .html, .htm  one self-contained page (inline CSS and SVG, no scripts, no network):\n"
    "               summary, model and machine facts, perplexity against latency and size\n"
    "               with the Pareto fronts, the sensitivity heatmap, per-layer errors, the\n"
    "               runs table and every recipe\n"
    "  .md          the same facts and tables in Markdown\n"
    "  .csv         FILE: one row per run with a column per metric; FILE-layers.csv: one\n"
    "               row per per-layer metric; FILE-sensitivity.csv: the sensitivity scan\n"
    "A project with no runs yet still gets a report that says so. Files are replaced\n"
    "atomically.\n";

int run_report(const std::vector<std::string>& argv) {
  Args args(argv, {"out"}, {});
  if (args.positional().size() != 1)
    throw UsageError{"report takes one project file (see mcw help report)"};
  const auto out = args.value("out");
  if (!out || out->empty()) throw UsageError{"report needs --out FILE (.html, .md or .csv)"};
  report_format_for(*out);  // an unknown extension fails before any work
  const ReportData data = load_report_data(args.positional()[0]);
  for (const std::string& f : write_report(data, *out)) std::printf("wrote %s\n", f.c_str());
  if (data.runs.empty()) std::printf("(the project has no runs yet)\n");
  return 0;
}

}  // namespace mcw::cli
