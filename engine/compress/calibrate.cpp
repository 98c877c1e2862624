#include "engine/compress/calibrate.h"

#include <algorithm>
#include <chrono>

#include "engine/compress/activation_store.h"
#include "engine/core/error.h"
#include "engine/kernels/ops.h"
#include "engine/model/llama_tensors.h"

namespace mcw {

std::vector<LinearGroup> linear_groups(const LlamaModel& model) {
  std::vector<LinearGroup> out;
  const LlamaConfig& c = model.cfg;
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (uint8_t input : kBlockInputs) {
      LinearGroup g{l, {}, 0, ActInt8(input)};
      for (const BlockTensor& t : llama_block_tensors())
        if (t.input == input && t.present(c))
          g.names.push_back(block_tensor_name(l, t)), g.in_features = width(c, t.cols, l);
      out.push_back(std::move(g));
    }
  return out;
}

Tensor* find_weight(LlamaModel& model, const std::string& name) {
  for (auto& [n, t] : model.named_tensors())
    if (n == name) return t;
  return nullptr;
}

static void make_owned_f32(Tensor& t) {
  if (!(t.dtype() == DType::F32 && t.writable()) && !t.empty()) t = t.f32_copy();
}

Tensor* find_weight_f32(LlamaModel& model, const std::string& name) {
  Tensor* t = find_weight(model, name);
  if (!t) throw Error("", "the model has no weight " + name);
  make_owned_f32(*t);
  return t;
}

void materialize_f32(LlamaModel& model) {
  for (auto& [n, t] : model.named_tensors()) make_owned_f32(*t);
}

void materialize_layer_f32(LlamaModel& model, int64_t layer) {
  const std::string prefix = "model.layers." + std::to_string(layer) + ".";
  for (auto& [n, t] : model.named_tensors())
    if (n.starts_with(prefix)) make_owned_f32(*t);
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
                          const CancelToken* cancel, const CalibrationOptions& opt) {
  const LlamaConfig& c = model.cfg;
  if (windows.empty()) throw Error("", "calibration needs at least one window of text");
  const size_t W = windows.size();
  const int64_t D = c.dim, Q = c.q_dim(), H = c.hidden_dim;
  std::vector<int64_t> rows;
  int64_t longest = 0, total = 0;
  for (const auto& w : windows) rows.push_back(int64_t(w.size())), longest = std::max(longest, rows.back()), total += rows.back();
  ActivationStore hidden(rows, D, opt.activations, opt.memory_budget, opt.scratch_dir);
  std::vector<float> h(size_t(longest * D)), xn(size_t(longest * D));
  if (opt.start_layer > 0) {
    hidden.load(opt.start_hidden);
  } else {
    for (size_t w = 0; w < W; ++w) {
      llama_embed(model, windows[w], h.data());
      hidden.put(w, h.data());
    }
  }
  const std::vector<LinearGroup> groups = linear_groups(model);
  size_t done = size_t(opt.start_layer) * 4;
  auto finish_group = [&](const LinearGroup& g) {
    if (hooks.compress) hooks.compress(g);
    report(progress, "calibrate", g.names.front(), double(++done) / double(groups.size()));
  };
  // Inputs of o_proj / down_proj for every window, while they fit the reuse budget; else
  // one window's worth, formed again in the pass that needs it.
  const bool keep_att = !opt.uncompressed_inputs && uint64_t(total * Q) * 4 <= opt.reuse_budget;
  const bool keep_act = !opt.uncompressed_inputs && uint64_t(total * H) * 4 <= opt.reuse_budget;
  std::vector<float> att(size_t((keep_att ? total : longest) * Q));
  std::vector<float> act(size_t((keep_act ? total : longest) * H));
  std::vector<int64_t> first(W);  // row offset of each window in the kept arrays
  for (size_t w = 1; w < W; ++w) first[w] = first[w - 1] + rows[w - 1];
  auto att_of = [&](size_t w) { return att.data() + (keep_att ? first[w] * Q : 0); };
  auto act_of = [&](size_t w) { return act.data() + (keep_act ? first[w] * H : 0); };

  // FLOPs of each forward step for T rows (a multiply-add is 2; causal attention scores
  // and their weighted sum cover half of the T x T products each).
  const double KV = double(c.kv_dim());
  auto attention_flops = [&](int64_t T) {
    return 2.0 * double(T) * double(D) * (double(Q) + 2 * KV) + 2.0 * double(T) * double(T) * double(Q);
  };
  auto timed = [&](double flops, auto&& step) {
    if (!opt.forward) return step();
    const auto t0 = std::chrono::steady_clock::now();
    step();
    opt.forward->seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    opt.forward->flops += flops;
  };
  auto attention = [&](int64_t l, size_t w) {
    timed(attention_flops(rows[w]), [&] { llama_attention_output(model, l, xn.data(), rows[w], att_of(w)); });
  };
  auto mlp = [&](int64_t l, size_t w) {
    timed(4.0 * double(rows[w]) * double(D) * double(H), [&] { llama_mlp_hidden(model, l, xn.data(), rows[w], act_of(w)); });
  };

  const int64_t end = opt.end_layer < 0 ? c.n_layers : std::min(opt.end_layer, c.n_layers);
  for (int64_t l = opt.start_layer; l < end; ++l) {
    const LlamaLayer& L = model.layers[size_t(l)];
    const LinearGroup* g = &groups[size_t(l) * 4];
    if (opt.uncompressed_inputs) {
      // One forward pass of the block per window, every group observing it; the next
      // block's input is this block's output before any of its weights change.
      for (size_t w = 0; w < W; ++w) {
        if (cancel) cancel->throw_if_cancelled();
        hidden.get(w, h.data());
        llama_norm(c, h.data(), L.attn_norm, L.attn_norm_b, xn.data(), rows[w]);
        if (hooks.observe) hooks.observe(g[0], xn.data(), rows[w]);
        float* a = att_of(w);
        timed(attention_flops(rows[w]), [&] { llama_attention_output(model, l, xn.data(), rows[w], a); });
        if (hooks.observe) hooks.observe(g[1], a, rows[w]);
        timed(2.0 * double(rows[w]) * double(Q) * double(D), [&] { llama_add_o_proj(model, l, a, rows[w], h.data()); });
        llama_norm(c, h.data(), L.ffn_norm, L.ffn_norm_b, xn.data(), rows[w]);
        if (hooks.observe) hooks.observe(g[2], xn.data(), rows[w]);
        float* m = act_of(w);
        timed(4.0 * double(rows[w]) * double(D) * double(H), [&] { llama_mlp_hidden(model, l, xn.data(), rows[w], m); });
        if (hooks.observe) hooks.observe(g[3], m, rows[w]);
        timed(2.0 * double(rows[w]) * double(H) * double(D), [&] { llama_add_down_proj(model, l, m, rows[w], h.data()); });
        hidden.put(w, h.data());
      }
      for (int k = 0; k < 4; ++k) finish_group(g[k]);
      if (hooks.block_done) hooks.block_done(l, hidden);
      continue;
    }
    // Each pass reads the block input again: a compress hook may have changed the weights
    // (and, SmoothQuant, the norm) the pass before used.
    auto normed = [&](size_t w, const Tensor& norm, const Tensor& bias) {
      llama_norm(c, h.data(), norm, bias, xn.data(), rows[w]);
    };
    auto check = [&] {
      if (cancel) cancel->throw_if_cancelled();
    };
    for (size_t w = 0; w < W; ++w) {  // q, k, v
      check();
      hidden.get(w, h.data()), normed(w, L.attn_norm, L.attn_norm_b);
      if (hooks.observe) hooks.observe(g[0], xn.data(), rows[w]);
    }
    finish_group(g[0]);
    for (size_t w = 0; w < W; ++w) {  // o
      check();
      hidden.get(w, h.data()), normed(w, L.attn_norm, L.attn_norm_b);
      attention(l, w);
      if (hooks.observe) hooks.observe(g[1], att_of(w), rows[w]);
    }
    finish_group(g[1]);
    for (size_t w = 0; w < W; ++w) {  // residual after attention; gate, up
      check();
      hidden.get(w, h.data());
      if (!keep_att) normed(w, L.attn_norm, L.attn_norm_b), attention(l, w);
      timed(2.0 * double(rows[w]) * double(Q) * double(D), [&] { llama_add_o_proj(model, l, att_of(w), rows[w], h.data()); });
      hidden.put(w, h.data());
      normed(w, L.ffn_norm, L.ffn_norm_b);
      if (hooks.observe) hooks.observe(g[2], xn.data(), rows[w]);
    }
    finish_group(g[2]);
    for (size_t w = 0; w < W; ++w) {  // down
      check();
      hidden.get(w, h.data()), normed(w, L.ffn_norm, L.ffn_norm_b);
      mlp(l, w);
      if (hooks.observe) hooks.observe(g[3], act_of(w), rows[w]);
    }
    finish_group(g[3]);
    for (size_t w = 0; w < W; ++w) {  // residual after the MLP: the next block's input
      check();
      hidden.get(w, h.data());
      if (!keep_act) normed(w, L.ffn_norm, L.ffn_norm_b), mlp(l, w);
      timed(2.0 * double(rows[w]) * double(H) * double(D), [&] { llama_add_down_proj(model, l, act_of(w), rows[w], h.data()); });
      hidden.put(w, h.data());
    }
    if (hooks.block_done) hooks.block_done(l, hidden);
  }
}

}  // namespace mcw
