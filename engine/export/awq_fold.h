// AWQ's input scales folded into the op before each layer, for formats whose layers have no
// input scale (compressed-tensors, which vLLM runs): an AWQ layer's codes are those of
// W·diag(s) and its input must be x / s. The reference does exactly this to the model before
// it quantises (llm-awq / AutoAWQ apply_scale), and MCW does it at export:
//   q/k/v (one s)  →  the block's input_layernorm weight ÷ s
//   gate/up        →  post_attention_layernorm weight ÷ s
//   o_proj         →  v_proj's rows (and bias) ÷ s, only where v's outputs are o's inputs
//                     (as many kv heads as heads: the reference's shape check)
//   down_proj      →  up_proj's rows ÷ s
// A scale folds only when every linear reading that input has the same s (and is written as
// its codes). The op it folds into is changed as it is written: a dense tensor in its dtype
// (so a bf16 norm is rounded to bf16, as the reference's in-place fold rounds it), a
// group-wise layer through its per-row scales (then rounded to f16, as all its scales are).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/model/llama_config.h"

namespace mcw {

struct AwqFolds {
  // Tensor (HF name) → the divisor of each of its rows (a vector: of each entry).
  std::map<std::string, std::vector<float>> divide;
  std::map<std::string, std::string> refused;  // AWQ layer → why its s cannot fold
  // Layers whose s is folded: written as their codes, without the input scale.
  std::vector<std::string> folded;
};

// `scales`: the input scale s of each AWQ layer (HF weight name) that could be written as
// its codes if s were folded.
AwqFolds plan_awq_folds(const LlamaConfig& c,
                        const std::map<std::string, std::vector<float>>& scales);

// `values` (rows × cols, row-major; cols 1 for a vector) with row r divided by d[r].
void divide_rows(float* values, int64_t rows, int64_t cols, const std::vector<float>& d);

}  // namespace mcw
