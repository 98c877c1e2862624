#include "engine/runs/run_pareto.h"

#include "engine/runs/pareto.h"

namespace mcw {

std::vector<size_t> pareto_runs(const std::vector<RunRecord>& runs,
                                const std::vector<std::string>& metrics) {
  std::vector<std::vector<double>> points;
  std::vector<size_t> owner;  // points[i] belongs to runs[owner[i]]
  points.reserve(runs.size());
  for (size_t r = 0; r < runs.size(); ++r) {
    std::vector<double> p;
    p.reserve(metrics.size());
    for (const std::string& name : metrics) {
      const auto v = runs[r].metric(name);
      if (!v) break;
      p.push_back(*v);
    }
    if (p.size() != metrics.size()) continue;
    points.push_back(std::move(p));
    owner.push_back(r);
  }
  std::vector<size_t> front = pareto_front(points);
  for (size_t& i : front) i = owner[i];
  return front;
}

}  // namespace mcw
