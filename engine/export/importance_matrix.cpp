#include "engine/export/importance_matrix.h"

#include "engine/compress/input_profile.h"

namespace mcw {

ImportanceMatrix measure_importance(const LlamaModel& model,
                                    const std::vector<std::vector<int32_t>>& windows,
                                    const ProgressFn& progress, const CancelToken* cancel) {
  ImportanceMatrix out;
  for (const InputProfile& p : profile_linear_inputs(model, windows, progress, cancel)) {
    std::vector<float> mean_sq(p.norm.size());
    for (size_t j = 0; j < p.norm.size(); ++j)
      mean_sq[j] = p.tokens > 0 ? float(p.norm[j] * p.norm[j] / double(p.tokens)) : 0.0f;
    for (const std::string& name : p.group.names) out[name] = mean_sq;
  }
  return out;
}

}  // namespace mcw
