#include "engine/report/markdown_report.h"

#include <algorithm>
#include <cmath>

#include "engine/report/report_tables.h"
#include "engine/report/report_text.h"

namespace mcw {

namespace {

std::string M(std::string_view s) { return escape_markdown_cell(s); }

std::string table_row(const std::vector<std::string>& cells) {
  std::string s = "|";
  for (const auto& c : cells) s += " " + c + " |";
  return s + "\n";
}

std::string table_rule(const std::vector<bool>& right) {
  std::string s = "|";
  for (bool r : right) s += r ? " ---: |" : " --- |";
  return s + "\n";
}

// A fence longer than any run of backticks in the text, so nothing in it can close it.
std::string fence_for(const std::string& text) {
  size_t longest = 0, run = 0;
  for (char c : text) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return std::string(std::max<size_t>(3, longest + 1), '`');
}

std::string grid_table(const ReportGrid& g, const std::string& corner) {
  std::vector<std::string> head = {M(corner)};
  std::vector<bool> right = {false};
  for (const auto& c : g.columns) head.push_back(M(c)), right.push_back(true);
  std::string s = table_row(head) + table_rule(right);
  for (size_t r = 0; r < g.rows.size(); ++r) {
    std::vector<std::string> row = {M(g.rows[r])};
    for (size_t c = 0; c < g.columns.size(); ++c) {
      const double v = g.values[r * g.columns.size() + c];
      row.push_back(std::isnan(v) ? "-" : M(format_general(v, 4)));
    }
    s += table_row(row);
  }
  return s;
}

}  // namespace

std::string markdown_report(const ReportData& d) {
  std::string s = "# MCW report: " + M(d.project.name) + "\n\n";
  s += "Generated " + M(format_utc_time(d.generated_at)) + " on " + M(d.machine.host) + " by MCW " +
       M(d.machine.mcw_version) + ".\n\n";

  s += "## Summary\n\n";
  if (d.runs.empty()) {
    s += "No runs recorded yet" +
         std::string(d.database_exists ? "" : " (the run database does not exist yet)") +
         ". Run `mcw run` on the project to record some.\n\n";
  } else {
    const ReportHighlights h = report_highlights(d);
    s += "- Runs: " + std::to_string(d.runs.size()) + " (" +
         std::to_string(d.count(RunStatus::Done)) + " done, " +
         std::to_string(d.count(RunStatus::Failed)) + " failed)\n";
    auto line = [&](const char* what, const RunRecord* r) {
      if (!r) return;
      const auto ppl = r->metric("perplexity");
      s += std::string("- ") + what + ": " + M(run_title(*r)) +
           (ppl ? ", perplexity " + format_general(*ppl, 5) : std::string()) + "\n";
    };
    line("Baseline", h.baseline);
    line("Most accurate compressed", h.most_accurate);
    line("Smallest", h.smallest);
    line("Fastest", h.fastest);
    auto front = [&](const std::vector<size_t>& f) {
      std::string out;
      for (size_t i : f) out += (out.empty() ? "" : ", ") + M(run_title(d.runs[i]));
      return out.empty() ? std::string("none") : out;
    };
    s += "- Pareto front, perplexity against latency: " + front(d.front_latency) + "\n";
    s += "- Pareto front, perplexity against size: " + front(d.front_size) + "\n\n";
  }
  for (const ProjectProblem& p : d.problems)
    s += "> **Problem** (" + M(p.field) + "): " + M(p.message) + "\n\n";

  s += "## Project, model and machine\n\n" + table_row({"Fact", "Value"}) +
       table_rule({false, false});
  const Project& p = d.project;
  s += table_row({"Project", M(p.name)});
  s += table_row({"Project file", M(d.project_file)});
  s += table_row({"Calibration text", p.calibration_path.empty() ? "none" : M(p.calibration_path)});
  s += table_row({"Evaluation text", p.evaluation_path.empty() ? "none" : M(p.evaluation_path)});
  s += table_row({"Evaluation window / stride / max tokens",
                  std::to_string(p.eval.window) + " / " + std::to_string(p.eval.stride) + " / " +
                      std::to_string(p.eval.max_tokens)});
  s += table_row({"Run database", M(d.database_path)});
  s += table_row({"Model", M(d.model.path)});
  if (d.model.loaded()) {
    s += table_row({"Model format", M(d.model.format)});
    s += table_row({"Architecture", M(d.model.architecture.empty() ? "-" : d.model.architecture)});
    s += table_row({"Parameters", std::to_string(d.model.parameters)});
    s += table_row({"Tensor bytes", std::to_string(d.model.bytes)});
    s += table_row({"Tensors", std::to_string(d.model.tensors.size())});
    s += table_row({"Fingerprint", M(d.model.fingerprint)});
  } else {
    s += table_row({"Model status", M(d.model.error)});
  }
  s += table_row({"Host", M(d.machine.host)});
  s += table_row({"CPU", M(d.machine.cpu)});
  s += table_row({"SIMD level", M(d.machine.simd)});
  s += table_row({"Threads", std::to_string(d.machine.threads)});
  s += "\n";

  if (!d.runs.empty()) {
    s += "## Runs\n\n";
    std::vector<std::string> head;
    std::vector<bool> right;
    for (const RunColumn& c : report_run_columns())
      head.push_back(M(c.header)), right.push_back(c.numeric);
    head.push_back("Error"), right.push_back(false);
    s += table_row(head) + table_rule(right);
    for (size_t i = 0; i < d.runs.size(); ++i) {
      std::vector<std::string> row;
      for (const RunColumn& c : report_run_columns()) row.push_back(M(c.cell(d, i)));
      row.push_back(M(d.runs[i].info.status == RunStatus::Done ? "" : d.runs[i].info.error));
      s += table_row(row);
    }
    s += "\n";
  }

  for (const ReportGrid& g : report_sensitivity_grids(d))
    s += "## Sensitivity: " + M(g.metric) + "\n\n" + grid_table(g, "Layer") + "\n";

  if (const std::vector<size_t> best = report_layer_runs(d, 3); !best.empty())
    s += "## Per-layer relative error\n\n" + grid_table(report_layer_grid(d, best), "Layer") + "\n";

  if (!d.runs.empty()) {
    s += "## Recipes\n\n";
    for (const std::vector<size_t>& g : report_recipe_groups(d)) {
      const RunInfo& first = d.runs[g.front()].info;
      std::string ids;
      for (size_t i : g) ids += (ids.empty() ? "" : ", ") + std::to_string(d.runs[i].info.id);
      s += "### " + M(first.recipe_name) + " (run" + (g.size() > 1 ? "s " : " ") + ids + ")\n\n";
      if (first.recipe_text.empty()) {
        s += "No recipe text.\n\n";
      } else {
        const std::string f = fence_for(first.recipe_text);
        s += f + "yaml\n" + first.recipe_text + (first.recipe_text.back() == '\n' ? "" : "\n") + f +
             "\n\n";
      }
    }
  }

  if (d.model.loaded() && !d.model.tensors.empty()) {
    s += "## Tensors\n\n" + table_row({"Name", "Type", "Shape", "Parameters", "Bytes"}) +
         table_rule({false, false, false, true, true});
    for (const ReportTensor& t : d.model.tensors) {
      std::string shape = "[";
      for (size_t k = 0; k < t.shape.size(); ++k)
        shape += (k ? ", " : "") + std::to_string(t.shape[k]);
      s += table_row({M(t.name), M(t.dtype), M(shape + "]"), std::to_string(t.parameters),
                      std::to_string(t.bytes)});
    }
    s += "\n";
  }
  return s;
}

}  // namespace mcw
