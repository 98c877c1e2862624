// Streams a synthetic model to disk: the safetensors header first, then each tensor's
// bf16 values in batches of at most 64 MB. While one batch is written by a helper thread,
// oneTBB fills the next, so generation and disk overlap and memory stays at two batches.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <future>
#include <vector>

#include "engine/io/atomic_file.h"
#include "engine/io/safetensors_stream.h"
#include "engine/io/staging_dir.h"
#include "engine/model/synth_model.h"

namespace mcw {

namespace {

constexpr int64_t kBatch = int64_t(32) << 20;  // elements: 64 MB of bf16
constexpr int64_t kGrain = int64_t(1) << 16;   // elements per parallel task

std::string gb(uint64_t bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f", double(bytes) / 1e9);
  return s;
}

}  // namespace

void write_synth_model(const SynthPlan& plan, const std::string& dir, const ProgressFn& progress,
                       const CancelToken* cancel) {
  StagingDir out(dir);
  write_file_atomically(out.file("config.json"), plan.hf_config().dump(2) + "\n");
  // MCW's byte vocabulary: ids 0..255 are bytes, 256 BOS, 257 EOS; the embedding keeps the
  // real vocabulary's rows, so the model has its real size and the ids above are unused.
  write_file_atomically(
      out.file("mcw_tokenizer.json"),
      nlohmann::json{{"type", "byte"}, {"bos", true}, {"eos", true}}.dump(2) + "\n");

  std::vector<SafetensorsEntry> entries;
  for (const SynthTensor& t : plan.tensors) entries.push_back({t.name, DType::BF16, t.shape});
  SafetensorsStreamWriter st(out.file("model.safetensors"), entries, {{"format", "pt"}});

  int64_t largest = 0;  // a small model needs no 64 MB buffers
  for (const SynthTensor& t : plan.tensors) largest = std::max(largest, t.numel());
  const size_t batch = size_t(std::min(kBatch, largest));
  std::vector<uint16_t> buf[2] = {std::vector<uint16_t>(batch), std::vector<uint16_t>(batch)};
  std::future<void> writing;  // the previous batch, being written
  int which = 0;
  const uint64_t total = plan.data_bytes();
  uint64_t done = 0;
  for (size_t t = 0; t < plan.tensors.size(); ++t) {
    const int64_t numel = plan.tensors[t].numel();
    for (int64_t begin = 0; begin < numel; begin += kBatch) {
      if (cancel && cancel->cancelled()) {
        if (writing.valid()) writing.wait();
        throw Cancelled();
      }
      const int64_t n = std::min(kBatch, numel - begin);
      uint16_t* dst = buf[which].data();
      tbb::parallel_for(
          tbb::blocked_range<int64_t>(0, n, kGrain), [&](const tbb::blocked_range<int64_t>& r) {
            synth_values(plan, t, begin + r.begin(), r.end() - r.begin(), dst + r.begin());
          });
      if (writing.valid()) writing.get();  // rethrows a write error
      writing = std::async(std::launch::async, [&st, dst, n] { st.write(dst, size_t(n) * 2); });
      which ^= 1;
      done += uint64_t(n) * 2;
      report(progress, "synth", plan.tensors[t].name, double(done) / double(total),
             gb(done) + " of " + gb(total) + " GB");
    }
  }
  if (writing.valid()) writing.get();
  report(progress, "synth", "", 1.0, "syncing to disk");
  st.commit();
  out.commit();
}

}  // namespace mcw
