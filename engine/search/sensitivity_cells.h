// How a sensitivity scan computes its cells, one function per SensitivityMeasure (the scan
// itself reads and writes the run store and reports progress). Internal to the scan.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/search/sensitivity_scan.h"

namespace mcw {

struct CellWork {
  const LlamaModel& base;
  std::span<const int32_t> tokens;  // the measured text (and the calibration text)
  const SensitivityOptions& opt;
  SensitivityTable& table;          // layers, settings and cells; the todo cells are filled in
  std::vector<size_t> todo;         // indices into table.cells
  int64_t live = 1;                 // cells in flight at most
  std::function<void(size_t cell)> finished;  // after each cell, one call at a time
  const CancelToken* cancel = nullptr;
};

// The decoder block of "model.layers.N.…".
int64_t block_of_layer(const std::string& name);

// kl: reference logits (and, with opt.reuse_block_inputs, every block's input) from one
// pass of the original over the measured windows; each cell then runs from its layer's
// block on. Returns the original's perplexity on the windows.
double measure_kl_cells(const CellWork& w, int64_t windows, int64_t window);
// layer: one sequential-calibration pass over the original gathers each group's XᵀX; while
// a group's statistics are at hand, its cells are compressed and measured against them.
void measure_layer_cells(const CellWork& w);
// block: every block's input kept from one pass of the original; a cell runs one block.
void measure_block_cells(const CellWork& w, int64_t windows, int64_t window);

}  // namespace mcw
