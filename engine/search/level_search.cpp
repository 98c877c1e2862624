#include "engine/search/level_search.h"

#include <tbb/info.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "engine/core/error.h"
#include "engine/search/bounded_parallel.h"

namespace mcw {

double LevelProblem::total_cost(const std::vector<int>& choice) const {
  double c = fixed_cost;
  for (int64_t l = 0; l < layers; ++l) c += cell_cost(l, choice[size_t(l)]);
  return c;
}

double LevelProblem::total_loss(const std::vector<int>& choice) const {
  double s = 0;
  for (int64_t l = 0; l < layers; ++l) s += cell_loss(l, choice[size_t(l)]);
  return s;
}

bool LevelProblem::feasible(const std::vector<int>& choice) const {
  return total_cost(choice) <= limit + 1e-12 * std::max(std::abs(limit), 1.0);
}

GreedyLevels greedy_levels(const LevelProblem& p) {
  GreedyLevels g;
  g.choice.assign(size_t(p.layers), 0);
  double cost = p.total_cost(g.choice);
  auto holds = [&] { return cost <= p.limit + 1e-12 * std::max(std::abs(p.limit), 1.0); };
  while (!holds()) {
    int64_t best_layer = -1;
    int best_level = 0;
    double best_ratio = 0;
    for (int64_t l = 0; l < p.layers; ++l) {
      const int k = g.choice[size_t(l)];
      int next = k + 1;  // the next level down that saves something
      while (next < p.levels && p.cell_cost(l, next) >= p.cell_cost(l, k)) ++next;
      if (next >= p.levels) continue;
      const double ratio =
          (p.cell_loss(l, next) - p.cell_loss(l, k)) / (p.cell_cost(l, k) - p.cell_cost(l, next));
      if (best_layer < 0 || ratio < best_ratio)
        best_layer = l, best_level = next, best_ratio = ratio;
    }
    if (best_layer < 0) break;  // every layer at its cheapest level
    cost +=
        p.cell_cost(best_layer, best_level) - p.cell_cost(best_layer, g.choice[size_t(best_layer)]);
    g.choice[size_t(best_layer)] = best_level;
    cost = p.total_cost(g.choice);  // no drift from repeated differences
  }
  g.feasible = holds();
  return g;
}

namespace {

// A mutant of `parent` by 1..max_switches level switches; empty when no feasible, different
// one turned up in a bounded number of tries.
std::vector<int> mutate(const LevelProblem& p, const std::vector<int>& parent, int max_switches,
                        std::mt19937_64& rng) {
  if (p.layers < 2 || p.levels < 2) return {};
  std::uniform_int_distribution<int64_t> layer(0, p.layers - 1);
  std::uniform_int_distribution<int> switches(1, std::max(1, max_switches));
  for (int attempt = 0; attempt < 64; ++attempt) {
    std::vector<int> c = parent;
    const int n = switches(rng);
    for (int s = 0; s < n; ++s) {
      // One layer up a level (more accurate), another down one: the cost moves little.
      int64_t up = -1, down = -1;
      for (int t = 0; t < 32 && up < 0; ++t)
        if (const int64_t l = layer(rng); c[size_t(l)] > 0) up = l;
      for (int t = 0; t < 32 && down < 0; ++t)
        if (const int64_t l = layer(rng); l != up && c[size_t(l)] < p.levels - 1) down = l;
      if (up < 0 || down < 0) break;
      --c[size_t(up)];
      ++c[size_t(down)];
    }
    if (c != parent && p.feasible(c)) return c;
  }
  return {};
}

std::vector<int64_t> sample_windows(int64_t want, int64_t total, std::mt19937_64& rng) {
  std::vector<int64_t> all(static_cast<size_t>(total));
  std::iota(all.begin(), all.end(), 0);
  if (want <= 0 || want >= total) return all;
  for (int64_t i = 0; i < want; ++i) {  // partial Fisher-Yates
    std::uniform_int_distribution<int64_t> d(i, total - 1);
    std::swap(all[size_t(i)], all[size_t(d(rng))]);
  }
  all.resize(size_t(want));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

EvolutionResult evolve_levels(const LevelProblem& p, const std::vector<int>& start,
                              const LevelFitnessFn& fitness, int64_t total_windows,
                              const EvolutionOptions& opt, const ProgressFn& progress,
                              const CancelToken* cancel) {
  if (int64_t(start.size()) != p.layers)
    throw Error("", "the start has the wrong number of layers");
  for (int k : start)
    if (k < 0 || k >= p.levels) throw Error("", "the start has a level out of range");
  if (!p.feasible(start))
    throw Error("", "the start of the evolutionary search exceeds the budget");
  if (opt.steps.empty() || opt.offspring < 1 || opt.generations < 0 || total_windows < 1)
    throw Error("", "evolutionary search needs offspring, selection steps and windows");
  for (const SelectionStep& s : opt.steps)
    if (s.survivors < 1) throw Error("", "every selection step must keep at least one candidate");

  std::mt19937_64 rng(opt.seed);
  const int64_t live = opt.max_parallel > 0 ? opt.max_parallel : tbb::info::default_concurrency();
  std::map<std::vector<int>, double> full;  // fitness on all windows, by choice
  const std::vector<int64_t> all_windows = sample_windows(0, total_windows, rng);
  EvolutionResult out;

  // Fitness of each candidate on `windows`, in parallel; results by index, so the outcome
  // does not depend on the threads.
  auto measure = [&](const std::vector<std::vector<int>>& cands,
                     const std::vector<int64_t>& windows) {
    const bool is_full = windows.size() == all_windows.size();
    std::vector<double> f(cands.size());
    std::vector<size_t> todo;
    for (size_t i = 0; i < cands.size(); ++i) {
      auto it = is_full ? full.find(cands[i]) : full.end();
      if (it != full.end())
        f[i] = it->second;
      else
        todo.push_back(i);
    }
    bounded_parallel_for(
        int64_t(todo.size()), live,
        [&](int64_t i) { f[todo[size_t(i)]] = fitness(cands[todo[size_t(i)]], windows); },
        [&](int64_t) {}, [&] { return cancel && cancel->cancelled(); });
    if (cancel) cancel->throw_if_cancelled();
    out.evaluations += int64_t(todo.size());
    if (is_full)
      for (size_t i : todo) full[cands[i]] = f[i];
    return f;
  };

  std::vector<int> parent = start;
  double parent_fit = measure({parent}, all_windows)[0];
  for (int g = 0; g < opt.generations; ++g) {
    if (cancel) cancel->throw_if_cancelled();
    std::vector<std::vector<int>> cands = {parent};
    for (int i = 0; i < opt.offspring; ++i) {
      std::vector<int> c = mutate(p, parent, opt.max_switches, rng);
      if (!c.empty() && std::find(cands.begin(), cands.end(), c) == cands.end())
        cands.push_back(std::move(c));
    }
    for (size_t s = 0; s < opt.steps.size() && cands.size() > 1; ++s) {
      const bool last = s + 1 == opt.steps.size();
      // The last step always measures every window: fitness stays comparable across generations.
      const auto windows = sample_windows(last ? 0 : opt.steps[s].windows, total_windows, rng);
      const std::vector<double> f = measure(cands, windows);
      std::vector<size_t> order(cands.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return f[a] < f[b]; });
      const size_t keep = last ? 1 : std::min(cands.size(), size_t(opt.steps[s].survivors));
      std::vector<std::vector<int>> next;
      for (size_t i = 0; i < keep; ++i) next.push_back(std::move(cands[order[i]]));
      cands = std::move(next);
    }
    const std::vector<int>& winner = cands.front();
    const double winner_fit = measure({winner}, all_windows)[0];  // cached after the last step
    if (winner_fit < parent_fit) parent = winner, parent_fit = winner_fit;
    out.history.push_back(parent_fit);
    out.generations = g + 1;
    report(progress, "evolution", "", double(g + 1) / double(opt.generations),
           "generation " + std::to_string(g + 1) + ": fitness " + std::to_string(parent_fit));
  }
  out.choice = parent;
  out.fitness = parent_fit;
  return out;
}

}  // namespace mcw
