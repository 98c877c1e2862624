// The sensitivity heatmap's data: the run store's cached scan results for one model as a
// layers × settings grid (rows in the model's order, settings in natural order), and
// single results put in as a scan produces them.
#pragma once
#include <string>
#include <vector>

#include "engine/runs/run_store.h"
#include "widgets/editor_types.h"

namespace mcw::studio {

// `layer_order`: the model's tensor names in order; layers it does not name go last, by name.
// Metrics read: "kl" (the cell's value, which makes it ready) and "perplexity", or the
// engine scan's "kl@<measurement>" and "ppl@<measurement>", or its proxies'
// "layer@<measurement>" and "block@<measurement>"; "bits" (the compressed layer's storage
// bits) of the same measurement. The grid shows one measure: KL where the
// store has any, else the block proxy, else the layer proxy (its quantity and title say
// which); where one setting was measured several ways, the measurement with the most
// cells is shown.
// Entries of metric `latency_metric` (layer_latency.h's store layout, this machine's key)
// fill the cells' latency_ms, the rows' dense_latency_ms and model_latency_ms.
ui::SensitivityGrid sensitivity_grid(const std::vector<SensitivityEntry>& entries,
                                     const std::vector<std::string>& layer_order,
                                     const std::string& latency_metric = {});

// Adds every layer × setting not in the grid yet as a pending cell (a scan about to run
// lays out its whole grid, so cells then fill in without the grid moving).
void ensure_sensitivity_axes(ui::SensitivityGrid& grid, const std::vector<std::string>& layers,
                             const std::vector<std::string>& settings,
                             const std::vector<std::string>& layer_order);

// Records one result (metric names as above); a value of another measure than the grid's
// starts the grid over in that measure (every cell pending). Returns the cell's {row, col}; *reshaped is set when a new layer or
// setting had to be added (rows and columns may then have moved).
std::pair<int, int> put_sensitivity(ui::SensitivityGrid& grid, const SensitivityEntry& entry,
                                    const std::vector<std::string>& layer_order, bool* reshaped);

}  // namespace mcw::studio
