// The Pareto front of stored runs over named metrics, all minimised (e.g. perplexity,
// latency_ms_per_token, size_bytes): what the accuracy-vs-latency plot draws.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "engine/runs/run_store.h"

namespace mcw {

// Indices into `runs` of the front, ascending. Runs that lack one of the metrics are not
// in it; ties and duplicates as in pareto.h (every copy of a front point is kept).
std::vector<size_t> pareto_runs(const std::vector<RunRecord>& runs,
                                const std::vector<std::string>& metrics);

}  // namespace mcw
