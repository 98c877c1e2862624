// Tokenizer speed: training a byte-level BPE vocabulary and encoding with it. Uses the
// Debian fortunes corpus (files under /usr/share/games/fortunes without .dat/.u8) when it
// is installed, else generated text of a similar size.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/model/bpe_tokenizer.h"
#include "engine/model/bpe_trainer.h"

namespace {

const std::string& corpus() {
  static const std::string text = [] {
    std::string all;
    const std::filesystem::path dir = "/usr/share/games/fortunes";
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      const std::string ext = e.path().extension().string();
      if (!e.is_regular_file() || ext == ".dat" || ext == ".u8") continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      all += ss.str();
    }
    if (all.size() > 100000) return all;
    std::mt19937 rng(1);
    const char* words[] = {"the", "of", "and", "fortune", "cookie", "wisdom", "is", "a",
                           "quiet", "mind", "42", "!", "\n"};
    while (all.size() < 2500000) all += std::string(" ") + words[rng() % 13];
    return all;
  }();
  return text;
}

void BM_TrainBpe2000(benchmark::State& state) {
  for (auto _ : state) {
    mcw::BpeTrainer trainer;
    trainer.add_text(corpus());
    benchmark::DoNotOptimize(trainer.train(2000));
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(corpus().size()));
}
BENCHMARK(BM_TrainBpe2000)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_EncodeBpe2000(benchmark::State& state) {
  mcw::BpeTrainer trainer;
  trainer.add_text(corpus());
  const auto doc = nlohmann::json::parse(trainer.train(2000).to_tokenizer_json().dump());
  mcw::BpeTokenizer tok(doc, "trained");
  const std::string_view text(corpus().data(), std::min<size_t>(corpus().size(), 1 << 20));
  for (auto _ : state) benchmark::DoNotOptimize(tok.encode(text, false));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
}
BENCHMARK(BM_EncodeBpe2000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
