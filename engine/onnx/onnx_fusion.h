// Chains of element-wise nodes the runner computes in one pass over memory instead of one
// pass (and one allocation) per node. Today one chain: HardSwish as exporters spell it
// before opset 14 (PaddlePaddle's PP-LCNet: Add(x, 3) → Clip(0, 6) → Mul(x, ·) → Div(·, 6)),
// whose intermediate values no other node reads. The fused pass computes the same float
// operations in the same order, so the result is bit for bit the unfused one.
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "engine/io/onnx.h"
#include "engine/onnx/onnx_value.h"

namespace mcw {

struct HardSwishChain {
  size_t add = 0, clip = 0, mul = 0, div = 0;  // node indices; the chain runs at `add`
  std::string x, y;                            // its input and the Div's output
};

// The chains of `model`, given its weights (initializers and Constant values) and the
// names the graph outputs (which a chain's intermediates must not be).
std::vector<HardSwishChain> find_hardswish_chains(const OnnxModel& model,
                                                  const std::map<std::string, OnnxValue>& weights);

// y = x · clip(x + 3, 0, 6) / 6, element by element; into x's own buffer when `in_place`.
OnnxValue run_hardswish_chain(const OnnxValue& x, OnnxValue* in_place);

}  // namespace mcw
