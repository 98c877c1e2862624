// What the compression tests share: a tiny llama config with room for groups of 32
// (dim 32, 4 heads, 2 kv heads, hidden 64), random token ids, calibration options.
#pragma once
#include <random>
#include <vector>

#include "engine/compress/compress_llama.h"
#include "llama_test_util.h"

namespace mcw::test {

inline LlamaConfig compress_config(int64_t layers = 2) {
  LlamaConfig c = tiny_config(4, 2);
  c.hidden_dim = 64;
  c.n_layers = layers;
  return c;
}

// n ids below the tiny vocabulary's 37.
inline std::vector<int32_t> random_tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& v : t) v = int32_t(rng() % 37);
  return t;
}

// Compression options for tests: calibration windows × tokens, the rest defaults.
inline CompressOptions calib_options(int64_t windows, int64_t window) {
  CompressOptions o;
  o.calib_windows = windows, o.calib_window = window;
  return o;
}

}  // namespace mcw::test
