// The `mcw` subcommands. Each returns the process exit code and throws mcw::Error for
// problems with input files and cli::UsageError for bad command lines.
#pragma once
#include <string>
#include <vector>

#include "engine/core/text_file.h"  // read_text_file, which many commands use

namespace mcw::cli {

struct Command {
  const char* name;
  const char* summary;
  const char* usage;  // full help text for `mcw help <name>`
  int (*run)(const std::vector<std::string>& args);
  // Long commands end with a "peak memory" line on stderr (main.cpp), the figure a user
  // needs to know whether a larger model would fit.
  bool report_memory = false;
};

const std::vector<Command>& commands();

int run_inspect(const std::vector<std::string>& args);
int run_eval(const std::vector<std::string>& args);
int run_generate(const std::vector<std::string>& args);
extern const char* const kInspectUsage;
extern const char* const kEvalUsage;
extern const char* const kGenerateUsage;

// A recipe file, or a preset name resolved in assets/recipes of the source tree or the
// install prefix; throws mcw::Error naming it when neither exists.
std::string resolve_recipe(const std::string& r);
int run_bench(const std::vector<std::string>& args);
extern const char* const kBenchUsage;

int run_train(const std::vector<std::string>& args);
int run_recover(const std::vector<std::string>& args);
extern const char* const kRecoverUsage;
int run_compress(const std::vector<std::string>& args);
int run_compress_onnx(const std::vector<std::string>& args);  // `compress` of an ONNX graph
int run_sensitivity_onnx(const std::vector<std::string>& args);  // its `sensitivity`
extern const char* const kCompressUsage;
extern const char* const kTrainUsage;
int run_run(const std::vector<std::string>& args);
int run_runs(const std::vector<std::string>& args);
extern const char* const kRunUsage;
extern const char* const kRunsUsage;
int run_sensitivity(const std::vector<std::string>& args);
int run_search(const std::vector<std::string>& args);
extern const char* const kSensitivityUsage;
extern const char* const kSearchUsage;
int run_predict(const std::vector<std::string>& args);
extern const char* const kPredictUsage;
int run_report(const std::vector<std::string>& args);
int run_project(const std::vector<std::string>& args);
extern const char* const kReportUsage;
extern const char* const kProjectUsage;
int run_activations(const std::vector<std::string>& args);
extern const char* const kActivationsUsage;
int run_diff(const std::vector<std::string>& args);
extern const char* const kDiffUsage;
int run_synth(const std::vector<std::string>& args);
int run_ocr_lines(const std::vector<std::string>& args);
int run_ocr_pages(const std::vector<std::string>& args);
extern const char* const kOcrPagesUsage;
int run_ocr_eval(const std::vector<std::string>& args);  // `eval` of an ONNX OCR model
extern const char* const kOcrLinesUsage;
extern const char* const kSynthUsage;
int run_export(const std::vector<std::string>& args);
extern const char* const kExportUsage;

}  // namespace mcw::cli
