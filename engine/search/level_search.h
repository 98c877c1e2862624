// Choosing one compression level per layer under an additive budget: the combinatorial
// core of the mixed-precision search, free of models so that it can be checked against
// exact solutions. Level 0 is a layer's most costly (most accurate) level; a cost is
// anything that adds up over layers: bits, bytes, milliseconds.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/core/progress.h"

namespace mcw {

struct LevelProblem {
  int64_t layers = 0, levels = 0;
  std::vector<double> cost;  // [layer * levels + level]
  std::vector<double> loss;  // predicted loss of the same cell (KL of the layer alone)
  double fixed_cost = 0;     // what the rest of the model costs
  double limit = 0;          // a choice is feasible when fixed_cost + Σ cost <= limit

  double cell_cost(int64_t layer, int level) const { return cost[size_t(layer * levels + level)]; }
  double cell_loss(int64_t layer, int level) const { return loss[size_t(layer * levels + level)]; }
  double total_cost(const std::vector<int>& choice) const;  // including fixed_cost
  double total_loss(const std::vector<int>& choice) const;  // Σ loss (the additive prediction)
  // With a relative tolerance of 1e-12 for rounding in sums of fractional costs.
  bool feasible(const std::vector<int>& choice) const;
};

struct GreedyLevels {
  std::vector<int> choice;  // level per layer
  bool feasible = false;    // false: even every layer at its cheapest level exceeds the limit
};

// Starts every layer at level 0 and, while the budget does not hold, moves one layer one
// level down: the move with the least loss increase per unit of cost saved (moves that save
// nothing are skipped over to the next level that does). Ends with every layer at its
// cheapest level when the limit cannot be met.
GreedyLevels greedy_levels(const LevelProblem& p);

struct SelectionStep {
  int survivors = 1;    // candidates kept after this step
  int64_t windows = 0;  // measurement windows used in this step; 0 or more than there are: all
};

struct EvolutionOptions {
  int generations = 20;
  int offspring = 16;  // mutants per generation (the parent competes with them)
  // Few windows for many candidates, more for the survivors; the last step keeps one.
  std::vector<SelectionStep> steps = {{4, 2}, {2, 4}, {1, 0}};
  int max_switches = 3;  // level switches per mutation: 1..max_switches, uniformly
  uint64_t seed = 1;
  int max_parallel = 0;  // candidates measured at once; 0: one per hardware thread
};

// Lower is better. Measured on the listed windows (indices into 0..total_windows-1, sorted).
// Called from several threads at once (for different candidates).
using LevelFitnessFn =
    std::function<double(const std::vector<int>& choice, std::span<const int64_t> windows)>;

struct EvolutionResult {
  std::vector<int> choice;
  double fitness = 0;           // on all windows
  int generations = 0;          // run
  int64_t evaluations = 0;      // fitness calls
  std::vector<double> history;  // the parent's fitness after each generation
};

// Evolutionary search in the manner of EvoPress: one parent (starting at `start`, which
// must be feasible); each generation makes `offspring` mutants by level switches (one layer
// up a level, another down), keeping only feasible ones, then selects in steps on growing
// numbers of windows, the parent competing too (so the fitness never gets worse).
// Deterministic for a seed whatever the threads. Throws mcw::Error for an infeasible start
// or bad options; mcw::Cancelled between evaluations when `cancel` fires.
EvolutionResult evolve_levels(const LevelProblem& p, const std::vector<int>& start,
                              const LevelFitnessFn& fitness, int64_t total_windows,
                              const EvolutionOptions& opt, const ProgressFn& progress = {},
                              const CancelToken* cancel = nullptr);

}  // namespace mcw
