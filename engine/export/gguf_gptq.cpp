#include "engine/export/gguf_gptq.h"

#include <oneapi/tbb/parallel_for.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/compress/block_gptq.h"
#include "engine/compress/calibrate.h"
#include "engine/compress/layer_stats_accumulate.h"
#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/export/gguf_gptq_checkpoint.h"
#include "engine/kernels/gram.h"

namespace mcw {
namespace {

// `bytes` in a file without a name in `dir` (O_TMPFILE: nothing is left behind, whatever
// ends the process), mapped back read-only as a tensor of `type` and `shape`.
Tensor write_and_map(const std::string& dir, const std::vector<std::byte>& bytes, DType type,
                     const Shape& shape, const std::string& name) {
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR, 0600);
  if (fd < 0)
    throw Error(dir, "cannot make a scratch file for the GPTQ blocks: " + std::string(std::strerror(errno)));
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      throw Error(dir, "cannot write the GPTQ blocks of " + name + " (disk full?)");
    }
    done += size_t(n);
  }
  void* p = ::mmap(nullptr, bytes.size(), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw Error(dir, "cannot map the GPTQ blocks of " + name);
  std::shared_ptr<const void> owner(p, [n = bytes.size()](const void* q) { ::munmap(const_cast<void*>(q), n); });
  return Tensor::view(type, shape, p, bytes.size(), std::move(owner), name);
}

// The rows of `blocks` decoded, in parallel.
std::vector<float> decode_rows(const std::byte* blocks, DType type, int64_t rows, int64_t cols) {
  const size_t row_bytes = *dtype_bytes(type, uint64_t(cols));
  std::vector<float> out(size_t(rows * cols));
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    to_f32(type, blocks + size_t(r) * row_bytes, out.data() + r * cols, size_t(cols));
  });
  return out;
}

// llama-quantize --imatrix's blocks of w, weighted by `mean_sq` per column, decoded.
std::vector<float> imatrix_baseline(const std::vector<float>& w, DType type, int64_t rows,
                                    int64_t cols, const std::vector<float>& mean_sq) {
  const size_t row_bytes = *dtype_bytes(type, uint64_t(cols));
  std::vector<std::byte> blocks(size_t(rows) * row_bytes);
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    from_f32_weighted(type, w.data() + r * cols, blocks.data() + size_t(r) * row_bytes,
                      size_t(cols), mean_sq.data());
  });
  return decode_rows(blocks.data(), type, rows, cols);
}

double output_energy_of_difference(const std::vector<float>& a, const std::vector<float>& b,
                                   int64_t rows, int64_t cols, const std::vector<double>& xtx) {
  std::vector<float> d(a.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = a[i] - b[i];
  return weighted_square_norm(d.data(), rows, cols, xtx.data());
}

}  // namespace

std::map<std::string, GgufGptqError> gptq_for_gguf(LlamaModel& model,
                                                   const std::vector<std::vector<int32_t>>& windows,
                                                   const GgufGptqOptions& opt) {
  std::map<std::string, GgufGptqError> errors;
  std::map<std::string, LayerStats> stats;  // by the group's first linear, while it fills
  CalibrationHooks hooks;
  auto wanted = [&](const LinearGroup& g) {
    for (const std::string& n : g.names)
      if (opt.type_of(n)) return true;
    return false;
  };
  hooks.observe = [&](const LinearGroup& g, const float* x, int64_t rows) {
    if (!wanted(g)) return;
    auto [it, fresh] = stats.try_emplace(g.names.front());
    if (fresh) it->second = make_layer_stats(g.in_features);
    accumulate(it->second, x, rows);
  };
  hooks.compress = [&](const LinearGroup& g) {
    const auto node = stats.extract(g.names.front());
    if (!node) return;
    const LayerStats& st = node.mapped();
    std::vector<float> mean_sq(size_t(st.cols));
    for (int64_t j = 0; j < st.cols; ++j)
      mean_sq[size_t(j)] =
          float(st.xtx[size_t(j * st.cols + j)] / double(std::max<int64_t>(st.samples, 1)));
    for (const std::string& name : g.names) {
      const std::optional<DType> type = opt.type_of(name);
      if (!type) continue;
      Tensor* t = find_weight(model, name);
      if (!t) throw Error(name, "the model has no such weight to re-quantise");
      const int64_t rows = t->dim(0), cols = t->dim(1);
      const std::vector<float> w = t->to_f32();
      BlockGptqResult r =
          quantize_gptq_blocks(w.data(), rows, cols, st, *type, {}, opt.cancel, name);
      const std::vector<float> q = decode_rows(r.blocks.data(), *type, rows, cols);
      GgufGptqError& e = errors[name];
      e.type = *type, e.percdamp = r.percdamp;
      for (size_t i = 0; i < w.size(); ++i) {
        const double d = double(q[i]) - double(w[i]);
        e.diff += d * d, e.ref += double(w[i]) * double(w[i]);
      }
      e.out_diff = output_energy_of_difference(q, w, rows, cols, st.xtx);
      e.out_ref = weighted_square_norm(w.data(), rows, cols, st.xtx.data());
      e.baseline_out_diff = output_energy_of_difference(
          imatrix_baseline(w, *type, rows, cols, mean_sq), w, rows, cols, st.xtx);
      *t = opt.checkpoint ? opt.checkpoint->write_weight(name, r.blocks, *type, t->shape())
                          : write_and_map(opt.scratch_dir, r.blocks, *type, t->shape(), t->name());
    }
  };
  CalibrationOptions co;
  co.memory_budget = opt.activation_budget;
  co.scratch_dir = opt.scratch_dir;
  if (opt.checkpoint) {
    if (std::optional<GgufGptqCheckpoint::State> done = opt.checkpoint->resume()) {
      for (auto& [hf, blocks] : done->weights) {
        Tensor* t = find_weight(model, hf);
        if (!t || t->shape() != blocks.shape())
          throw Error(hf, "the checkpoint holds a weight this model does not have");
        *t = std::move(blocks);
      }
      errors = std::move(done->errors);
      co.start_layer = done->next_block;
      co.start_hidden = done->hidden_path;
      if (opt.on_resume) opt.on_resume(done->next_block, model.cfg.n_layers);
    }
    hooks.block_done = [&](int64_t layer, const ActivationStore& hidden) {
      opt.checkpoint->block_done(layer, model.cfg.n_layers, hidden, errors);
      if (opt.on_checkpoint) opt.on_checkpoint(layer + 1);
    };
  }
  if (co.start_layer < model.cfg.n_layers)
    sequential_calibrate(model, windows, hooks, opt.progress, opt.cancel, co);
  return errors;
}

}  // namespace mcw
