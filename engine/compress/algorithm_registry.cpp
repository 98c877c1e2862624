// The list of compression algorithms (algorithm.h). Each entry is defined in the
// algorithm's own file; the order here is the order the recipe editor offers them.
#include "engine/compress/algorithm.h"

namespace mcw {

CompressAlgorithm rtn_algorithm();          // rtn.cpp
CompressAlgorithm gptq_algorithm();         // gptq.cpp
CompressAlgorithm awq_algorithm();          // awq_stage.cpp
CompressAlgorithm smoothquant_algorithm();  // smoothquant_stage.cpp
CompressAlgorithm kmeans_algorithm();       // kmeans.cpp
CompressAlgorithm magnitude_algorithm();    // magnitude.cpp
CompressAlgorithm wanda_algorithm();        // wanda.cpp
CompressAlgorithm sparsegpt_algorithm();    // sparsegpt.cpp
CompressAlgorithm svd_algorithm();          // low_rank.cpp
CompressAlgorithm heads_algorithm();        // structured_stage.cpp
CompressAlgorithm channels_algorithm();     // structured_stage.cpp
CompressAlgorithm flap_algorithm();         // flap_stage.cpp
CompressAlgorithm channel_obs_algorithm();  // channel_obs.cpp

const std::vector<CompressAlgorithm>& compress_algorithms() {
  static const std::vector<CompressAlgorithm> all = {
      rtn_algorithm(),         gptq_algorithm(),      awq_algorithm(),      smoothquant_algorithm(),
      kmeans_algorithm(),      magnitude_algorithm(), wanda_algorithm(),    sparsegpt_algorithm(),
      svd_algorithm(),         heads_algorithm(),     channels_algorithm(), flap_algorithm(),
      channel_obs_algorithm(),
  };
  return all;
}

const CompressAlgorithm* find_algorithm(const std::string& name) {
  for (const CompressAlgorithm& a : compress_algorithms())
    if (a.name == name) return &a;
  return nullptr;
}

CalibrationNeed calibration_need(const std::string& algorithm, const nlohmann::json& params) {
  const CompressAlgorithm* a = find_algorithm(algorithm);
  return a ? a->needs(params) : CalibrationNeed::None;
}

}  // namespace mcw
