// The what-if assignment's data: the studio's sensitivity grid as the engine's
// SensitivityTable (what predict_assignment and assignment_recipe read), and a
// prediction of an assignment over it as the panels' row.
#pragma once
#include <QList>

#include "engine/compress/resource_estimate.h"
#include "engine/search/recipe_prediction.h"
#include "widgets/editor_types.h"

namespace mcw::studio {

// Rows, columns and cells of `grid`, with the layers' sizes from `shape` (the
// open model's). A column whose label names no setting
// (scan_setting_from_label) keeps an empty algorithm: predictions read its
// cells, a recipe cannot be written from it. Throws mcw::Error naming a grid
// layer the model does not have.
SensitivityTable grid_table(const ui::SensitivityGrid& grid, const ModelShape& shape);

// The prediction of `assignment` (one column or -1 per grid row); not valid,
// with the reason, when it does not fit the grid, assigns a cell not measured
// yet or one whose size the scan did not record, or keeps every layer.
ui::AssignmentPrediction predict_grid_assignment(const ui::SensitivityGrid& grid,
                                                 const ModelShape& shape,
                                                 const QList<int>& assignment,
                                                 const PredictionCalibration& calibration);

}  // namespace mcw::studio
