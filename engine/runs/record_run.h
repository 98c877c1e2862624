// Recording one run of a project in the run store, shared by the transformer and the ONNX
// runners (project_runner.cpp, onnx_project_runner.cpp).
#pragma once
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/runs/project_runner.h"

namespace mcw {

inline void enter(const RunHooks& h, const char* phase) {
  if (h.on_phase) h.on_phase(phase);
}

// Records the run and drives it: `body` computes the metrics; the final status and the
// metrics land in one transaction, so a reader never sees a done run without metrics.
template <class Body>
RecipeRunOutcome record_run(RunStore& store, const ProjectRunInputs& in, const std::string& name,
                            const std::string& text, Body&& body) {
  RunInfo info;
  info.project = in.project.name;
  info.model_fingerprint = in.fingerprint;
  info.recipe_name = name;
  info.recipe_text = text;
  info.status = RunStatus::Running;
  RecipeRunOutcome out;
  out.run_id = store.create_run(info);
  auto finish = [&](RunStatus s, const std::string& error) {
    out.status = s, out.error = error;
    store.set_status(out.run_id, s, error);
  };
  try {
    std::vector<LayerMetric> layers;
    std::vector<CurvePoint> curve;
    body(out.metrics, layers, curve);
    store.batch([&] {
      store.add_metrics(out.run_id, out.metrics);
      store.add_layer_metrics(out.run_id, layers);
      if (!curve.empty()) store.add_curve(out.run_id, curve);
      finish(RunStatus::Done, {});
    });
  } catch (const Cancelled&) {
    finish(RunStatus::Cancelled, "cancelled");
  } catch (const Error& e) {
    finish(RunStatus::Failed, e.what());
  } catch (const std::exception& e) {
    finish(RunStatus::Failed, std::string("internal error: ") + e.what());
    throw;
  }
  return out;
}

}  // namespace mcw
