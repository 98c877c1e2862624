// `mcw-studio --screenshot out.png [project]`: waits until the model and its statistics
// (and, with --evaluate, an evaluation; with --run-all, a run of every recipe) have
// finished, then saves the window as a PNG. With runs, the Runs dock is raised and the
// newest finished run selected, so the picture shows them. --panel-shots DIR adds
// pictures of single panels (DIR is created when missing). With --scan, a sensitivity
// scan runs last (the Sensitivity dock is raised for the picture) and the UI heartbeat's
// figures during it are printed to stdout; --compare-with FILE compares the model with
// FILE (the Model Diff dock raised; with --panel-shots also model_diff.png);
// --what-if RECIPE then opens what-if editing from that recipe (its predicted point on
// the trade-off plot); --export-report FILE writes the report after everything else. Used for documentation
// and to check the look under xvfb-run.
#pragma once
#include <QString>

namespace mcw::studio {

class MainWindow;

struct ScreenshotOptions {
  QString output;
  bool evaluate = false;
  int timeout_ms = 60000;
  // When set: also recipe_editor.png (a preset loaded), recipe_editor_error.png (the
  // project's first recipe, with its error if it has one) and sensitivity.png, each dock
  // grabbed on its own; and inspector.png (the largest matrix in the tensor inspector).
  QString panels_dir;
  bool run_all = false;
  bool scan = false;    // run a sensitivity scan, print the heartbeat figures
  QString report = {};  // export the report here (.html/.md/.csv/.pdf) before the grab
  QString compare_with = {};  // a model to diff the open one against
  // A project recipe to edit in what-if mode (after the scan): the Sensitivity panel in
  // what-if mode starting from it, the trade-off plot on bits per weight and KL showing
  // its predicted point; with panels_dir also tradeoff.png. Fails when the recipe cannot
  // be expressed on the grid.
  QString what_if = {};
};

// Starts the wait; quits the application with 0 when the PNG is written, 1 otherwise.
void schedule_screenshot(MainWindow& window, const ScreenshotOptions& options);

}  // namespace mcw::studio
