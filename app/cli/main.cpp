// mcw: the command-line face of the engine. Exit codes: 0 success, 1 a user error (one
// line on stderr naming the file and the problem), 2 an internal error.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "engine/core/error.h"
#include "engine/core/huge_pages.h"
#include "engine/core/memory_usage.h"

namespace mcw::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> list = {
      {"inspect", "show a model's architecture, tensors and weight statistics", kInspectUsage,
       run_inspect},
      {"diff", "compare two models tensor by tensor (relative L2, cosine, sparsity)", kDiffUsage,
       run_diff, true},
      {"eval", "perplexity, KL and top-1 agreement of a model on a text", kEvalUsage, run_eval,
       true},
      {"generate", "continue a prompt with a model", kGenerateUsage, run_generate, true},
      {"compress", "run a compression recipe on a model", kCompressUsage, run_compress, true},
      {"recover", "win back a compressed model's accuracy with low-rank adapters (LoRA/RoRA)",
       kRecoverUsage, run_recover, true},
      {"bench", "prefill and decode speed of a model, dense or compressed, on this machine",
       kBenchUsage, run_bench, true},
      {"run", "run a project's recipes and record the results", kRunUsage, run_run, true},
      {"runs", "list, show and compare recorded runs", kRunsUsage, run_runs},
      {"activations", "how each layer's input spreads over its channels (outlier features)",
       kActivationsUsage, run_activations, true},
      {"sensitivity", "each layer compressed alone at each setting: KL, or a layer/block proxy",
       kSensitivityUsage, run_sensitivity, true},
      {"search", "mixed precision per layer under a size or latency budget", kSearchUsage,
       run_search, true},
      {"predict", "what a recipe with per-layer settings would give, before running it",
       kPredictUsage, run_predict, true},
      {"report", "write a review report (HTML, Markdown or CSV) of a project's runs", kReportUsage,
       run_report},
      {"project", "create a project file, or show one with a summary of its runs", kProjectUsage,
       run_project},
      {"train", "train a small llama model from scratch on the fortune corpus", kTrainUsage,
       run_train, true},
      {"export", "write a compressed model in another runtime's format (compressed-tensors)",
       kExportUsage, run_export, true},
      {"synth", "write a random model in the exact shape of a real one (benchmarks)", kSynthUsage,
       run_synth, true},
      {"ocr-lines", "render text lines as labelled images (an OCR evaluation set)", kOcrLinesUsage,
       run_ocr_lines},
      {"ocr-pages", "render pages of text lines with their boxes (a text-detection evaluation set)",
       kOcrPagesUsage, run_ocr_pages},
  };
  return list;
}

static void print_help() {
  std::printf(
      "mcw %s: Model Compression Workbench\n\n"
      "usage: mcw <command> [options]\n       mcw help <command>\n       mcw --version\n\n"
      "commands:\n",
      MCW_VERSION);
  for (const Command& c : commands()) std::printf("  %-12s %s\n", c.name, c.summary);
}

static const Command* find_command(const std::string& name) {
  for (const Command& c : commands())
    if (name == c.name) return &c;
  return nullptr;
}

static int dispatch(int argc, char** argv) {
  if (argc < 2) {
    print_help();
    return 1;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h") return print_help(), 0;
  if (cmd == "--version") return std::printf("mcw %s\n", MCW_VERSION), 0;
  if (cmd == "help") {
    if (argc < 3) return print_help(), 0;
    const Command* c = find_command(argv[2]);
    if (!c) throw UsageError{std::string("unknown command '") + argv[2] + "'"};
    std::printf("%s", c->usage);
    return 0;
  }
  const Command* c = find_command(cmd);
  if (!c) throw UsageError{"unknown command '" + cmd + "' (see mcw --help)"};
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const std::string& a : args)
    if (a == "--help" || a == "-h") return std::printf("%s", c->usage), 0;
  if (!c->report_memory) return c->run(args);
  // Here rather than in each command, and on stderr so --json output stays clean. Only
  // after a return: a command that throws ends with its one-line error and nothing else.
  // Resident is the kernel's VmHWM (mmap'd weights included); anonymous is the sampled
  // peak of RssAnon, what the job itself allocated.
  PeakMemorySampler sampler;
  const int code = c->run(args);
  const double gib = 1024.0 * 1024.0 * 1024.0;
  const double anon = double(sampler.peak_anonymous()) / gib;
  sampler.stop();
  std::fflush(stdout);
  std::fprintf(stderr, "peak memory: %.2f GiB resident, %.2f GiB anonymous\n",
               double(read_memory_usage().peak_resident) / gib, anon);
  return code;
}

}  // namespace mcw::cli

int main(int argc, char** argv) {
  mcw::restart_with_huge_page_malloc(argv);
  // A file that outgrows the size limit (ulimit -f) fails its write with EFBIG, reported as
  // an error naming the file like a full disk, instead of killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    return mcw::cli::dispatch(argc, argv);
  } catch (const mcw::cli::UsageError& e) {
    std::fprintf(stderr, "mcw: %s\n", e.message.c_str());
    return 1;
  } catch (const mcw::Error& e) {
    std::fprintf(stderr, "mcw: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "mcw: internal error: out of memory\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mcw: internal error: %s\n", e.what());
    return 2;
  }
}
