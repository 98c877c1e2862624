// What the int8 activations of the GGUF decode product (block_gemv.h) cost in accuracy on a
// real (trained) model: the model's linears stored as a GGUF block type (the types MCW
// quantises: Q8_0, Q4_0, Q4_1), the eval text decoded token by token (m = 1, the path
// int8 activations take) in windows with a fresh KV cache, once on exact f32 activations
// and once on int8 ones; prints the perplexity of each and the mean KL(exact || int8) per
// token, with the f32 model's perplexity beside them. Then the same for MCW's own group-wise
// layouts (RTN g128 at 8, 4, 3 and 2 bits, run packed).
//   int8_activation_kl MODEL_DIR TEXT [TOKENS] [WINDOW] [decode|prefill]
// prefill: each window in one forward pass (`mcw eval`'s products, m = window) instead.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/compress/compress_llama.h"
#include "engine/core/blocks.h"
#include "engine/eval/packed_llama.h"
#include "engine/io/model_file.h"
#include "engine/kernels/block_gemv.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/model/llama_model.h"
#include "engine/model/tokenizer_loader.h"
#include "engine/recipe/recipe.h"

using namespace mcw;

namespace {

// Log-softmax of one row of logits.
std::vector<double> log_probs(const float* z, int64_t n) {
  double mx = z[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(z[i]));
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(z[i]) - mx);
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(z[i]) - mx - std::log(s);
  return out;
}

// Logits of every position, window by window with a fresh KV cache: one token at a time
// (decode, m = 1) or each window in one forward pass (prefill, m = window, as `mcw eval`
// runs). `forward` has llama_forward's contract (tokens, cache, every position's logits).
bool g_prefill = false;
template <class Forward>
std::vector<float> window_logits(const LlamaConfig& cfg, Forward forward, const std::vector<int32_t>& toks,
                                 int64_t window) {
  const int64_t V = cfg.vocab_size;
  std::vector<float> out(toks.size() * size_t(V));
  for (size_t w0 = 0; w0 < toks.size(); w0 += size_t(window)) {
    KVCache cache(cfg, window);
    const size_t w1 = std::min(toks.size(), w0 + size_t(window));
    if (g_prefill) {
      forward(std::span<const int32_t>(&toks[w0], w1 - w0), cache, out.data() + w0 * size_t(V));
      continue;
    }
    for (size_t t = w0; t < w1; ++t)
      forward(std::span<const int32_t>(&toks[t], 1), cache, out.data() + t * size_t(V));
  }
  return out;
}
std::vector<float> decode_logits(const LlamaModel& m, const std::vector<int32_t>& toks, int64_t window) {
  return window_logits(m.cfg, [&](auto tok, KVCache& c, float* z) { llama_forward(m, tok, c, z); },
                       toks, window);
}
std::vector<float> decode_logits(const PackedLlama& m, const std::vector<int32_t>& toks, int64_t window) {
  return window_logits(m.model().cfg, [&](auto tok, KVCache& c, float* z) { m.forward(tok, c, z); },
                       toks, window);
}

double perplexity(const std::vector<float>& logits, const std::vector<int32_t>& toks, int64_t V,
                  int64_t window) {
  double nll = 0;
  int64_t n = 0;
  for (size_t t = 0; t + 1 < toks.size(); ++t) {
    if ((t + 1) % size_t(window) == 0) continue;  // the next token starts a new window
    nll -= log_probs(logits.data() + t * size_t(V), V)[size_t(toks[t + 1])];
    ++n;
  }
  return std::exp(nll / double(n));
}

double mean_kl(const std::vector<float>& p_logits, const std::vector<float>& q_logits, int64_t V) {
  const size_t positions = p_logits.size() / size_t(V);
  double kl = 0;
  for (size_t t = 0; t < positions; ++t) {
    const auto p = log_probs(p_logits.data() + t * size_t(V), V);
    const auto q = log_probs(q_logits.data() + t * size_t(V), V);
    for (int64_t i = 0; i < V; ++i) kl += std::exp(p[size_t(i)]) * (p[size_t(i)] - q[size_t(i)]);
  }
  return kl / double(positions);
}

// One table row: the same weights decoded on exact and on int8 activations.
template <class Model>
void row(const char* name, const Model& m, const std::vector<float>& f32,
         const std::vector<int32_t>& toks, int64_t V, int64_t window) {
  set_int8_activations(false);
  const std::vector<float> exact = decode_logits(m, toks, window);
  set_int8_activations(true);
  const std::vector<float> int8 = decode_logits(m, toks, window);
  std::printf("| %s | %.4f | %.4f | %.3g | %.3g |\n", name, perplexity(exact, toks, V, window),
              perplexity(int8, toks, V, window), mean_kl(exact, int8, V), mean_kl(f32, int8, V));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: int8_activation_kl MODEL_DIR TEXT [TOKENS] [WINDOW] [decode|prefill]\n");
    return 1;
  }
  const int64_t n_tokens = argc > 3 ? std::stoll(argv[3]) : 1024;
  const int64_t window = argc > 4 ? std::stoll(argv[4]) : 256;
  g_prefill = argc > 5 && std::string(argv[5]) == "prefill";
  const ModelFile file = open_model_file(argv[1]);
  const LlamaModel base = load_llama(file);
  std::ifstream in(argv[2], std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  std::vector<int32_t> toks = load_tokenizer(file)->encode(text.str(), true);
  if (int64_t(toks.size()) > n_tokens) toks.resize(size_t(n_tokens));
  const int64_t V = base.cfg.vocab_size;

  set_int8_activations(false);
  const std::vector<float> f32 = decode_logits(base, toks, window);
  std::printf("model %s, %zu tokens in windows of %lld, %s\n", argv[1], toks.size(),
              (long long)window, g_prefill ? "each window in one pass" : "one token at a time");
  std::printf("| weights | PPL, f32 activations | PPL, int8 activations | KL(f32 act. || int8 act.) | KL(f32 model || int8 act.) |\n|---|---:|---:|---:|---:|\n");
  std::printf("| f32 | %.4f | | | |\n", perplexity(f32, toks, V, window));
  for (DType t : {DType::Q8_0, DType::Q4_1, DType::Q4_0}) {
    LlamaModel m = base;
    for (auto& [name, w] : m.named_tensors()) {
      const bool linear = name.find("_proj.weight") != std::string::npos;
      if (!linear || w->dim(1) % 32) continue;
      Tensor q = Tensor::zeros(t, w->shape(), name);
      const std::vector<float> v = w->to_f32();
      from_f32(t, v.data(), q.mutable_data(), v.size());
      *w = q;
    }
    if (!block_gemv_accelerated(t)) {
      std::printf("| %s | no int8 SIMD path on this CPU | | | |\n", std::string(dtype_name(t)).c_str());
      continue;
    }
    row(std::string(dtype_name(t)).c_str(), m, f32, toks, V, window);
  }
  // MCW's own group-wise layouts (round to nearest, groups of 128), run packed (PackedLlama:
  // Affine products on int8 activations, packed_weight.h).
  for (int bits : {8, 4, 3, 2}) {
    const std::string recipe = "stages:\n  - algorithm: rtn\n    bits: " + std::to_string(bits) +
                               "\n    group_size: 128\n";
    const CompressionResult c = compress_llama(base, parse_recipe(recipe, "int8_kl.yaml"), {}, {});
    const PackedLlama packed(c.model, c.layers);
    row(("MCW q" + std::to_string(bits) + " g128").c_str(), packed, f32, toks, V, window);
  }
  return 0;
}
