#include "engine/export/awq_fold.h"

#include "engine/model/llama_tensors.h"

namespace mcw {

AwqFolds plan_awq_folds(const LlamaConfig& c,
                        const std::map<std::string, std::vector<float>>& scales) {
  AwqFolds out;
  for (const auto& [name, s] : scales) {
    int64_t layer = 0;
    const BlockTensor* t = find_block_tensor(name, &layer);
    if (!t || !t->linear()) {
      out.refused[name] = "not a decoder block's linear";
      continue;
    }
    std::string why;  // every linear reading this input must divide it by the same s
    for (const BlockTensor& m : llama_block_tensors()) {
      if (!m.linear() || m.input != t->input || !m.present(c)) continue;
      const std::string member = block_tensor_name(layer, m);
      const auto it = scales.find(member);
      if (it == scales.end())
        why = member + " reads the same input without an AWQ scale it could fold";
      else if (it->second != s)
        why = member + " reads the same input with another AWQ scale";
    }
    std::vector<BlockRole> into;
    switch (t->input) {
      case kActInt8Qkv:
        into = {BlockRole::AttnNorm};
        break;
      case kActInt8GateUp:
        into = {BlockRole::FfnNorm};
        break;
      case kActInt8Down:
        into = {BlockRole::Up};
        break;
      default:  // o_proj: its input is v_proj's output, head for head
        into = {BlockRole::V, BlockRole::VBias};
        if (width(c, Width::KV, layer) != width(c, Width::Q, layer))
          why =
              "o_proj reads more values than v_proj writes (grouped-query attention), so its "
              "scale has nowhere to fold";
    }
    if (!why.empty()) {
      out.refused[name] = why;
      continue;
    }
    out.folded.push_back(name);
    for (BlockRole r : into)
      if (const BlockTensor& b = block_tensor(r); b.present(c))
        out.divide[block_tensor_name(layer, b)] = s;
  }
  return out;
}

void divide_rows(float* values, int64_t rows, int64_t cols, const std::vector<float>& d) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) values[r * cols + j] /= d[size_t(r)];
}

}  // namespace mcw
