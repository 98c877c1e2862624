// Turns the engine's ModelDiff into the rows the diff view shows (no widgets here).
#pragma once
#include "engine/eval/model_diff.h"
#include "widgets/model_diff_types.h"

namespace mcw::studio {

// Rows and summary of `diff`; state Done, paths from the diff.
ui::ModelDiffResult to_diff_result(const ModelDiff& diff);

}  // namespace mcw::studio
