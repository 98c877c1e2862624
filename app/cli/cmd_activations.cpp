// mcw activations: how each linear group's input is spread over its channels on
// calibration text (see engine/compress/input_profile.h) — whether activation-aware
// methods (Wanda, AWQ, SmoothQuant) have outlier channels to work with.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/progress_bar.h"
#include "engine/compress/input_profile.h"
#include "engine/model/causal_lm.h"
#include "engine/model/tokenizer_loader.h"

namespace mcw::cli {

const char* const kActivationsUsage =
    "usage: mcw activations <model> --calib TEXT [--windows N] [--window L] [--json]\n\n"
    "Runs calibration windows of TEXT through <model> (llama family) and prints, for each\n"
    "group of linear layers sharing an input, how the channel norms ||X_j|| spread: the\n"
    "largest and the 99th percentile over the median, the largest over the smallest, and\n"
    "how many channels reach |x| >= 6 (LLM.int8()'s outlier rule). Near 1, scores that\n"
    "weigh weights by their input norm (Wanda, AWQ) rank weights almost as magnitude does.\n\n"
    "  --windows N, --window L  calibration windows and their length (default 64 x 256)\n";

int run_activations(const std::vector<std::string>& argv) {
  Args args(argv, {"calib", "windows", "window"}, {"json"});
  if (args.positional().size() != 1)
    throw UsageError{"activations takes one model path (see mcw help activations)"};
  const auto calib_path = args.value("calib");
  if (!calib_path) throw UsageError{"activations needs --calib TEXT"};
  const ModelFile file = open_model_file(args.positional()[0]);
  const LlamaModel model = load_llama(file);
  const auto ids = load_tokenizer(file)->encode(read_text_file(*calib_path), false);
  const auto windows = calibration_windows(ids, args.int_or("windows", 64),
                                           std::min<long long>(args.int_or("window", 256),
                                                               model.cfg.max_seq_len));
  if (windows.empty()) throw Error(*calib_path, "no calibration tokens");
  std::vector<InputProfile> profiles;
  {
    ProgressBar bar("activations");
    profiles = profile_linear_inputs(model, windows, bar.callback());
  }
  if (args.flag("json")) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const InputProfile& p : profiles)
      out.push_back({{"linears", p.group.names}, {"layer", p.group.layer},
                     {"channels", p.group.in_features}, {"tokens", p.tokens},
                     {"max_over_median", p.max_over_median()},
                     {"p99_over_median", p.p99_over_median()},
                     {"max_over_min", p.max_over_min()},
                     {"channels_abs_ge_6", p.channels_reaching(6.0f)}, {"norm", p.norm}});
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%-42s %8s %10s %10s %10s %8s\n", "input of", "channels", "max/med", "p99/med",
              "max/min", "|x|>=6");
  for (const InputProfile& p : profiles) {
    std::string name = p.group.names[0];
    if (p.group.names.size() > 1) name += " +" + std::to_string(p.group.names.size() - 1);
    std::printf("%-42s %8lld %10.2f %10.2f %10.2f %8lld\n", name.c_str(),
                static_cast<long long>(p.group.in_features), p.max_over_median(),
                p.p99_over_median(), p.max_over_min(),
                static_cast<long long>(p.channels_reaching(6.0f)));
  }
  return 0;
}

}  // namespace mcw::cli
