#include "engine/compress/calibrate.h"

#include "engine/core/error.h"
#include "engine/kernels/ops.h"

namespace mcw {

std::vector<LinearGroup> linear_groups(const LlamaModel& model) {
  std::vector<LinearGroup> out;
  const LlamaConfig& c = model.cfg;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({l, {p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight",
                       p + "self_attn.v_proj.weight"}, c.dim});
    out.push_back({l, {p + "self_attn.o_proj.weight"}, c.q_dim()});
    out.push_back({l, {p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"}, c.dim});
    out.push_back({l, {p + "mlp.down_proj.weight"}, c.hidden_dim});
  }
  return out;
}

Tensor* find_weight(LlamaModel& model, const std::string& name) {
  for (auto& [n, t] : model.named_tensors())
    if (n == name) return t;
  return nullptr;
}

std::vector<std::vector<int32_t>> calibration_windows(std::span<const int32_t> tokens,
                                                      int64_t count, int64_t length) {
  std::vector<std::vector<int32_t>> out;
  const int64_t n = int64_t(tokens.size());
  if (n < 2 || count < 1 || length < 2) return out;
  length = std::min(length, n);
  const int64_t room = n - length;  // spread window starts evenly over the text
  count = std::min(count, room + 1);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t start = count > 1 ? room * i / (count - 1) : 0;
    out.emplace_back(tokens.begin() + start, tokens.begin() + start + length);
  }
  return out;
}

void sequential_calibrate(LlamaModel& model, const std::vector<std::vector<int32_t>>& windows,
                          const CalibrationHooks& hooks, const ProgressFn& progress,
                          const CancelToken* cancel) {
  const LlamaConfig& c = model.cfg;
  if (windows.empty()) throw Error("", "calibration needs at least one window of text");
  const size_t W = windows.size();
  const int64_t D = c.dim, Q = c.q_dim(), H = c.hidden_dim;
  std::vector<std::vector<float>> hidden(W), xn(W), act(W);
  for (size_t w = 0; w < W; ++w) {
    hidden[w].resize(windows[w].size() * size_t(D));
    llama_embed(model, windows[w], hidden[w].data());
  }
  auto rows = [&](size_t w) { return int64_t(windows[w].size()); };
  const std::vector<LinearGroup> groups = linear_groups(model);
  size_t done = 0;
  auto run_group = [&](const LinearGroup& g, std::vector<std::vector<float>>& input) {
    if (cancel) cancel->throw_if_cancelled();
    if (hooks.observe)
      for (size_t w = 0; w < W; ++w) hooks.observe(g, input[w].data(), rows(w));
    if (hooks.compress) hooks.compress(g);
    report(progress, "calibrate", g.names.front(), double(++done) / double(groups.size()));
  };

  // A compress hook may rescale the norm in front of its group (SmoothQuant folds into it),
  // so the normed input is formed again after the group's hook before the block goes on.
  auto norm_all = [&](const Tensor& weight) {
    for (size_t w = 0; w < W; ++w) {
      xn[w].resize(hidden[w].size());
      rmsnorm_rows(hidden[w].data(), weight.as<float>(), xn[w].data(), rows(w), D, c.rms_eps);
    }
  };
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LlamaLayer& L = model.layers[size_t(l)];
    const LinearGroup* g = &groups[size_t(l) * 4];
    norm_all(L.attn_norm);
    run_group(g[0], xn);  // q, k, v
    if (hooks.compress) norm_all(L.attn_norm);
    for (size_t w = 0; w < W; ++w) {
      act[w].resize(size_t(rows(w) * Q));
      llama_attention_output(model, l, xn[w].data(), rows(w), act[w].data());
    }
    run_group(g[1], act);  // o
    for (size_t w = 0; w < W; ++w) llama_add_o_proj(model, l, act[w].data(), rows(w), hidden[w].data());
    norm_all(L.ffn_norm);
    run_group(g[2], xn);  // gate, up
    if (hooks.compress) norm_all(L.ffn_norm);
    for (size_t w = 0; w < W; ++w) {
      act[w].resize(size_t(rows(w) * H));
      llama_mlp_hidden(model, l, xn[w].data(), rows(w), act[w].data());
    }
    run_group(g[3], act);  // down
    for (size_t w = 0; w < W; ++w) llama_add_down_proj(model, l, act[w].data(), rows(w), hidden[w].data());
  }
}

}  // namespace mcw
